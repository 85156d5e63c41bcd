#include "process/foreground.hpp"

#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.hpp"

namespace deltabox {

namespace {
// Synchronous faults must keep their default action; everything else is forwarded.
bool forwardable(int sig) {
  return sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE &&
         sig != SIGILL && sig != SIGTRAP && sig != SIGABRT && sig != SIGSYS;
}
}  // namespace

int exit_status_of(int wait_status) {
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return WEXITSTATUS(wait_status);
}

SignalForwarder::SignalForwarder(bool subreaper) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig = 1; sig < SIGRTMIN; ++sig)
    if (forwardable(sig)) sigaddset(&mask, sig);
  check(::sigprocmask(SIG_BLOCK, &mask, &old_mask_), "block signals");
  signal_fd_.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
  if (!signal_fd_) throw_errno("signalfd");
  if (subreaper) ::prctl(PR_SET_CHILD_SUBREAPER, 1);
}

SignalForwarder::~SignalForwarder() { ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr); }

int SignalForwarder::wait(pid_t pid) {
  for (;;) {
    // Reap first: the child may have exited before we got here.
    int status = 0;
    pid_t reaped;
    while ((reaped = ::waitpid(-1, &status, WNOHANG)) > 0)
      if (reaped == pid) return exit_status_of(status);
    if (reaped < 0 && errno == ECHILD) fail("process {} is not our child", pid);

    signalfd_siginfo info{};
    ssize_t n = ::read(signal_fd_.get(), &info, sizeof info);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read signalfd");
    }
    int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGCHLD) continue;
    if (sig == SIGWINCH && on_winch_) {
      on_winch_();
      continue;
    }
    ::kill(pid, sig);
  }
}

}  // namespace deltabox
