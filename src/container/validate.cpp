#include "container/validate.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "linux/personality.hpp"
#include "linux/scheduler.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

using oci::NamespaceType;

bool ipc_sysctl(const std::string& key) {
  static const std::set<std::string> keys = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                             "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                                             "kernel.shm_rmid_forced"};
  return keys.count(key) || key.rfind("fs.mqueue.", 0) == 0;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// A "network" namespace joined by path may still be the host's own.
bool private_namespace(const oci::Config& config, NamespaceType type, const char* proc_name) {
  const auto* ns = config.find_namespace(type);
  if (!ns) return false;
  return ns->path.empty() || !same_file(ns->path, std::string("/proc/self/ns/") + proc_name);
}

void validate_sysctls(const oci::Config& config) {
  for (const auto& [key, value] : config.linux->sysctl) {
    if (ipc_sysctl(key)) {
      if (!config.has_namespace(NamespaceType::ipc)) fail("sysctl \"{}\" is not allowed in the hosts ipc namespace", key);
      continue;
    }
    if (key.rfind("net.", 0) == 0) {
      if (!private_namespace(config, NamespaceType::network, "net"))
        fail("sysctl \"{}\" not allowed in host network namespace", key);
      continue;
    }
    if (config.has_namespace(NamespaceType::uts)) {
      if (key == "kernel.domainname") continue;
      if (key == "kernel.hostname") fail("sysctl \"{}\" is not allowed as it conflicts with the OCI \"hostname\" field", key);
    }
    fail("sysctl \"{}\" is not in a separate kernel namespace", key);
  }
}

void validate_user_namespace(const oci::Config& config) {
  const auto& l = *config.linux;
  const auto* userns = config.find_namespace(NamespaceType::user);
  if (!userns) {
    if (!l.uid_mappings.empty() || !l.gid_mappings.empty())
      fail("user namespace mappings specified, but user namespace isn't enabled in the config");
    return;
  }
  if (userns->path.empty() && (l.uid_mappings.empty() || l.gid_mappings.empty()))
    fail("user namespaces enabled, but no uid or gid mappings found");
}

// A notified syscall needs an agent to answer it (runc: "seccomp listenerPath is not set").
void validate_seccomp_notify(const oci::Seccomp& seccomp) {
  const bool notifies = std::any_of(seccomp.syscalls.begin(), seccomp.syscalls.end(),
                                    [](const oci::SeccompSyscall& s) { return s.action == "SCMP_ACT_NOTIFY"; });
  if (notifies && seccomp.listener_path.empty()) fail("seccomp listenerPath is not set");
}

}  // namespace

void validate_process_attrs(const oci::Process& process) {
  if (process.scheduler) validate_scheduler(*process.scheduler);
  if (process.io_priority) validate_io_priority(*process.io_priority);
  if (process.exec_cpu_affinity) validate_cpu_affinity(*process.exec_cpu_affinity);
}

void validate_for_create(const oci::Config& config) {
  // runc converts these while building its config, before anything exists; the container
  // process applies them much later, where a failure would leave a half-built container.
  if (config.process) validate_process_attrs(*config.process);
  if (!config.linux) return;
  if (config.linux->personality) validate_personality(*config.linux->personality);
  if (config.linux->seccomp) validate_seccomp_notify(*config.linux->seccomp);
  if (!config.hostname.empty() && !config.has_namespace(NamespaceType::uts))
    fail("unable to set hostname without a private UTS namespace");
  if (!config.domainname.empty() && !config.has_namespace(NamespaceType::uts))
    fail("unable to set domainname without a private UTS namespace");
  if (!config.linux->time_offsets.empty() && !config.has_namespace(NamespaceType::time))
    fail("time namespace offsets specified, but time namespace isn't enabled in the config");
  validate_user_namespace(config);
  validate_sysctls(config);
}

}  // namespace deltabox
