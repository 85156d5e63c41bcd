// `kill`: signal the container's init, or with --all every process in its cgroup.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/container.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {
// The pidfd pins the process: once opened and its start time checked, the signal cannot hit a
// process that reused the pid.
void signal_exact_process(pid_t pid, uint64_t start_time, int signal) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd || !same_process_alive(pid, start_time)) fail("container not running");
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), signal, nullptr, 0) < 0) {
    if (errno == ESRCH) fail("container not running");
    throw_errno("kill container init");
  }
}
}  // namespace

void Container::kill(int signal, bool all) {
  if (status() == oci::Status::stopped) {
    if (all) return;  // runc ignores "not running" with --all
    fail("container not running");
  }
  if (all)
    // SIGKILL takes everything; other signals are for the user's processes, not the anchor.
    (signal == SIGKILL ? cgroups() : workload_cgroups())->kill_all(signal);
  else
    signal_exact_process(state_.init_pid, state_.init_start_time, signal);
}

}  // namespace deltabox
