#pragma once
// The anchor: init of a snapshot-enabled container. Supervisors (conmon, containerd's shim, a
// foreground `run`) wait on the container's init pid, and a restored process tree cannot be
// made their child afterwards. So the init is this small deltabox-owned process, and the
// workload runs beneath it, one generation at a time, each in its own nested pid and mount
// namespace. Rollback swaps the generation; the anchor's pid never changes.
//
// The anchor forwards signals to the current generation's init and exits with its status when
// it exits on its own. Control messages arrive on a SOCK_SEQPACKET socket in the state dir.
#include <sys/types.h>

#include <string>

#include "util/fd.hpp"

namespace deltabox {

// Control protocol (one text message, one reply "ok" or "error: ..."):
//   "activate NEW OLD CONT": NEW (a pid in the anchor's namespace, 0 for none) becomes the current
//     generation; OLD (0 for none) is SIGKILLed; every pid listed in the cgroup.procs file CONT
//     ("-" for none) gets SIGCONT. Between "activate 0 OLD -" and the next activation the anchor
//     has no generation (a cold rollback in progress) and waits.
//   "current": replies the current generation's pid.
struct AnchorCommand {
  pid_t activate = 0;
  pid_t kill = 0;
  std::string resume_procs;  // cgroup.procs of a stopped template, or empty
};
std::string format_activate(const AnchorCommand& command);

// Runs the anchor's loop until the current generation exits; returns the exit status to exit
// with (the generation's code, or 128+signal).
int run_anchor(pid_t first_generation, UniqueFd control_listener);

// Client side, for the CLI: sends one command, returns the reply (throws on "error: ...").
std::string anchor_request(const std::string& socket_path, const std::string& message);

// Listening socket for the control channel (bound before the anchor starts).
UniqueFd anchor_listen(const std::string& socket_path);

}  // namespace deltabox
