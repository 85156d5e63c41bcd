#pragma once
// The last steps every container process takes before execve, shared by the container init and
// by exec: identity (user, groups, cwd, capabilities), then no_new_privs and seccomp, then exec.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <oci/config.hpp>

namespace deltabox {

struct ExecTarget {
  std::string path;
  std::vector<std::string> argv;
  std::vector<std::string> envp;
};

// Resolves args[0] through the process's PATH inside the current root, and completes the
// environment (HOME from the container's /etc/passwd, as runc does). Errors read like runc's:
// exec: "foo": executable file not found in $PATH
ExecTarget resolve_exec_target(const oci::Process& process);

// process.scheduler and process.ioPriority, applied by the process to itself while it is still
// privileged (real-time policies, negative nice and IOPRIO_CLASS_RT need CAP_SYS_NICE /
// CAP_SYS_ADMIN), before its rlimits (RLIMIT_NICE / RLIMIT_RTPRIO could forbid them) and
// seccomp. cpuset_cpus: the container's cgroup pins CPUs (runc's clearer EPERM message).
void apply_scheduling(const oci::Process& process, bool cpuset_cpus);
// linux.resources.cpu.cpus is set.
bool cpuset_cpus_configured(const oci::Config& config);

// A filter with SCMP_ACT_NOTIFY yields a notify fd once loaded: this hands it to the parent
// (which copies it with pidfd_getfd) and returns once the parent has its copy; the caller's
// copy is closed afterwards. Without one, such a filter fails ("seccomp listenerPath is not set").
using SeccompFdHandoff = std::function<void(int notify_fd)>;

// umask, groups, uid/gid, cwd, capabilities, in runc's order. Without no_new_privs the seccomp
// filter is loaded here, while CAP_SYS_ADMIN is still held.
void become_process_identity(const oci::Process& process, const std::optional<oci::Seccomp>& seccomp,
                             const SeccompFdHandoff& handoff = {});

// With no_new_privs, set it and load seccomp as late as possible so the filter sees only execve.
void apply_final_security(const oci::Process& process, const std::optional<oci::Seccomp>& seccomp,
                          const SeccompFdHandoff& handoff = {});

// Loads the filter and hands a notify fd, if any, to `handoff`.
void load_seccomp_with_handoff(const oci::Seccomp& seccomp, const SeccompFdHandoff& handoff);

[[noreturn]] void exec_target(const ExecTarget& target);

// Marks every fd from `first` up close-on-exec (what the container must not inherit).
void cloexec_from(int first);
// Closes every fd from `first` up except those in `keep`.
void close_fds_except(int first, std::vector<int> keep);

}  // namespace deltabox
