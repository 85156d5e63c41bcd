#include "linux/namespaces.hpp"

#include <fcntl.h>
#include <sched.h>

#include <algorithm>

#include "util/error.hpp"
#include "util/file.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace deltabox {

int clone_flag(oci::NamespaceType type) {
  switch (type) {
    case oci::NamespaceType::pid: return CLONE_NEWPID;
    case oci::NamespaceType::network: return CLONE_NEWNET;
    case oci::NamespaceType::mount: return CLONE_NEWNS;
    case oci::NamespaceType::ipc: return CLONE_NEWIPC;
    case oci::NamespaceType::uts: return CLONE_NEWUTS;
    case oci::NamespaceType::user: return CLONE_NEWUSER;
    case oci::NamespaceType::cgroup: return CLONE_NEWCGROUP;
    case oci::NamespaceType::time: return CLONE_NEWTIME;
  }
  return 0;
}

const char* proc_ns_name(oci::NamespaceType type) {
  switch (type) {
    case oci::NamespaceType::pid: return "pid";
    case oci::NamespaceType::network: return "net";
    case oci::NamespaceType::mount: return "mnt";
    case oci::NamespaceType::ipc: return "ipc";
    case oci::NamespaceType::uts: return "uts";
    case oci::NamespaceType::user: return "user";
    case oci::NamespaceType::cgroup: return "cgroup";
    case oci::NamespaceType::time: return "time";
  }
  return "";
}

bool NamespacePlan::joins_user() const {
  return std::any_of(joins.begin(), joins.end(),
                     [](const auto& j) { return j.first == oci::NamespaceType::user; });
}

NamespacePlan plan_namespaces(const oci::Config& config) {
  NamespacePlan plan;
  if (!config.linux) return plan;
  for (const auto& ns : config.linux->namespaces) {
    if (!ns.path.empty()) {
      UniqueFd fd(::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) throw_errno(fmt::format("open {} namespace path {}", oci::namespace_type_name(ns.type), ns.path));
      plan.joins.emplace_back(ns.type, std::move(fd));
    } else if (ns.type == oci::NamespaceType::user) {
      plan.new_user = true;
    } else {
      plan.new_flags |= clone_flag(ns.type);
    }
  }
  std::stable_sort(plan.joins.begin(), plan.joins.end(), [](const auto& a, const auto& b) {
    return a.first == oci::NamespaceType::user && b.first != oci::NamespaceType::user;
  });
  return plan;
}

void join_namespaces(NamespacePlan& plan) {
  for (auto& [type, fd] : plan.joins) {
    if (::setns(fd.get(), clone_flag(type)) < 0)
      throw_errno(fmt::format("join {} namespace", oci::namespace_type_name(type)));
    fd.reset();
  }
}

namespace {
std::string format_mappings(const std::vector<oci::IdMapping>& mappings) {
  std::string out;
  for (const auto& m : mappings) out += fmt::format("{} {} {}\n", m.container_id, m.host_id, m.size);
  return out;
}
}  // namespace

void write_id_mappings(pid_t pid, const std::vector<oci::IdMapping>& uid_mappings,
                       const std::vector<oci::IdMapping>& gid_mappings) {
  auto base = fmt::format("/proc/{}/", pid);
  if (!uid_mappings.empty()) write_file(base + "uid_map", format_mappings(uid_mappings));
  if (!gid_mappings.empty()) write_file(base + "gid_map", format_mappings(gid_mappings));
}

void write_time_offsets(const std::map<std::string, oci::TimeOffset>& offsets) {
  std::string text;
  for (const auto& [clock, off] : offsets) text += fmt::format("{} {} {}\n", clock, off.secs, off.nanosecs);
  if (!text.empty()) write_file("/proc/self/timens_offsets", text);
}

}  // namespace deltabox
