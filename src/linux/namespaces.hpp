#pragma once
// Which namespaces a container creates and which it joins, and the syscalls for both.
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include <oci/config.hpp>

#include "util/fd.hpp"

namespace deltabox {

int clone_flag(oci::NamespaceType type);
// Name under /proc/<pid>/ns/ ("net" for network, "mnt" for mount).
const char* proc_ns_name(oci::NamespaceType type);

struct NamespacePlan {
  int new_flags = 0;   // CLONE_NEW* to create (excluding user, handled apart)
  bool new_user = false;
  // Opened in the parent, while paths still resolve in the host's mount namespace.
  std::vector<std::pair<oci::NamespaceType, UniqueFd>> joins;
  bool joins_user() const;
};

NamespacePlan plan_namespaces(const oci::Config& config);
// setns into every joined namespace, the user namespace first so that later joins are checked
// against it (runc's nsexec order).
void join_namespaces(NamespacePlan& plan);
// Parent side of the user namespace handshake: /proc/<pid>/{uid,gid}_map.
void write_id_mappings(pid_t pid, const std::vector<oci::IdMapping>& uid_mappings,
                       const std::vector<oci::IdMapping>& gid_mappings);
// CLONE_NEWTIME offsets must be written before the first process enters the new namespace.
void write_time_offsets(const std::map<std::string, oci::TimeOffset>& offsets);

}  // namespace deltabox
