#pragma once
// A foreground `run` or `exec`: forward the signals we receive to the container process and
// return its exit status the way runc reports it.
#include <signal.h>
#include <sys/types.h>

#include <functional>

#include "util/fd.hpp"

namespace deltabox {

class SignalForwarder {
 public:
  // Blocks every catchable signal so that none is lost before the child exists; children reset
  // their mask (reset_signals_in_child). Makes the caller a subreaper so orphans are reaped here.
  explicit SignalForwarder(bool subreaper = true);
  ~SignalForwarder();
  SignalForwarder(const SignalForwarder&) = delete;
  SignalForwarder& operator=(const SignalForwarder&) = delete;

  // Called on SIGWINCH instead of forwarding it (a terminal relay resizes the pty).
  void on_window_change(std::function<void()> callback) { on_winch_ = std::move(callback); }
  // Waits until pid exits; returns its exit code, or 128+signal.
  int wait(pid_t pid);

 private:
  sigset_t old_mask_{};
  UniqueFd signal_fd_;
  std::function<void()> on_winch_;
};

int exit_status_of(int wait_status);

}  // namespace deltabox
