#include "process/in_namespaces.hpp"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/sync.hpp"
#include "process/clone.hpp"
#include "util/error.hpp"

namespace deltabox {

void run_in_namespaces(int pidfd, int flags, const std::function<void()>& fn) {
  auto [parent, child] = SyncChannel::make_pair();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    parent.close();
    try {
      reset_signals_in_child();
      if (::setns(pidfd, flags) < 0) throw_errno("join the container's namespaces");
      fn();
      child.send(SyncMsg::proceed);
    } catch (const std::exception& e) {
      child.send(SyncMsg::error, e.what());
    }
    ::_exit(0);
  }
  child.close();
  auto msg = parent.recv();
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (msg.type == SyncMsg::error) throw Error(msg.payload);
  if (msg.type != SyncMsg::proceed) fail("namespace helper exited unexpectedly");
}

}  // namespace deltabox
