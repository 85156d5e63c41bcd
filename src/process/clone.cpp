#include "process/clone.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.hpp"

namespace deltabox {

pid_t clone_process(uint64_t flags, int cgroup_fd) {
  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = flags;
  // CLONE_PARENT children signal our parent with our own exit signal; clone3 insists on 0 here.
  args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  long rc = ::syscall(SYS_clone3, &args, sizeof args);
  if (rc < 0) throw_errno("clone3");
  return static_cast<pid_t>(rc);
}

void reset_signals_in_child() {
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::signal(sig, SIG_DFL);
  }
}

void die_with_parent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  pid_t ppid = ::getppid();
  if (ppid != parent && ppid != 0) ::_exit(1);
}

int move_fd_above(int fd, int min) {
  if (fd < 0 || fd >= min) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, min);
  if (moved < 0) throw_errno("dup fd");
  ::close(fd);
  return moved;
}

}  // namespace deltabox
