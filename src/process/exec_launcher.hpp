#pragma once
// Starts a process inside a running container: joins its cgroups and namespaces, then execs.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <oci/config.hpp>

#include "cgroups/manager.hpp"
#include "linux/sync.hpp"

namespace deltabox {

struct ExecSpec {
  int target_pidfd = -1;      // pidfd of the process whose namespaces we join
  int namespace_flags = 0;    // CLONE_NEW* of the namespaces to join
  cgroups::Manager* cgroups = nullptr;
  oci::Process process;
  std::optional<oci::Seccomp> seccomp;
  std::optional<oci::Personality> personality;  // the container's linux.personality
  bool cpuset_cpus = false;   // the container's cgroup pins CPUs (linux.resources.cpu.cpus)
  int console_socket = -1;    // receives the pty master when process.terminal is set
  int inherited_fds = 0;
  std::vector<std::string> extra_env;
  // Given the parent's copy of the process's seccomp notify fd (linux.seccomp.listenerPath):
  // sends it to the agent. Unset: a notify filter fails.
  std::function<void(int notify_fd, pid_t pid)> send_seccomp_fd;
};

// Thrown when the process could not be started (runc exits 255 then).
class ExecStartError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Returns the pid (a child of the caller) once execve succeeded. process.execCPUAffinity's
// `initial` is briefly set on the calling thread (see launch_exec), so call it from the thread
// that may have its affinity changed and restored.
pid_t launch_exec(ExecSpec& spec);

}  // namespace deltabox
