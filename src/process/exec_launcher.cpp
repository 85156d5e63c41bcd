#include "process/exec_launcher.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/console.hpp"
#include "linux/rlimits.hpp"
#include "process/clone.hpp"
#include "process/finalize.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

void wait_pid(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void setup_exec_console(ExecSpec& spec) {
  if (!spec.process.terminal) return;
  if (::setsid() < 0) throw_errno("setsid");
  Pty pty = open_pty("/dev/ptmx");
  if (spec.process.console_size)
    set_window_size(pty.master.get(), static_cast<uint16_t>(spec.process.console_size->height),
                    static_cast<uint16_t>(spec.process.console_size->width));
  send_fd(spec.console_socket, pty.master.get(), "/dev/ptmx");
  ::close(spec.console_socket);
  make_controlling_terminal(pty.slave.get());
  dup_onto_stdio(pty.slave.get());
}

[[noreturn]] void exec_process_main(ExecSpec& spec, const SyncChannel& channel, pid_t cli_pid) {
  try {
    die_with_parent(cli_pid);
    setup_exec_console(spec);
    if (spec.process.oom_score_adj) set_oom_score_adj(*spec.process.oom_score_adj);
    apply_rlimits(spec.process.rlimits);
    oci::Process process = spec.process;
    process.env.insert(process.env.end(), spec.extra_env.begin(), spec.extra_env.end());
    ExecTarget target = resolve_exec_target(process);
    become_process_identity(process, spec.seccomp);
    apply_final_security(process, spec.seccomp);
    // Our parent waits for the channel to close on execve; a later exit must not kill us.
    ::prctl(PR_SET_PDEATHSIG, 0);
    exec_target(target);
  } catch (const std::exception& e) {
    try {
      channel.send(SyncMsg::error, e.what());
    } catch (...) {
    }
  }
  ::_exit(255);
}

// Joins the container (cgroups before namespaces: cgroupfs is the host's) and forks the process
// into its pid namespace as our parent's child.
[[noreturn]] void exec_stage(ExecSpec& spec, SyncChannel channel, pid_t cli_pid, bool in_cgroup2) {
  try {
    reset_signals_in_child();
    die_with_parent(cli_pid);
    // Until execve, /proc/<pid>/exe is the runtime binary: keep container processes from
    // opening it (CVE-2019-5736).
    ::prctl(PR_SET_DUMPABLE, 0);
    const int first_free = 3 + spec.inherited_fds;
    channel = SyncChannel(UniqueFd(move_fd_above(channel.release_fd(), first_free)));
    spec.console_socket = move_fd_above(spec.console_socket, first_free);
    spec.target_pidfd = move_fd_above(spec.target_pidfd, first_free);
    close_fds_except(first_free, {channel.fd(), spec.console_socket, spec.target_pidfd});
    spec.cgroups->enter_self(in_cgroup2);
    if (::setns(spec.target_pidfd, spec.namespace_flags) < 0) throw_errno("join container namespaces");
    ::close(spec.target_pidfd);
    pid_t child = clone_sibling();
    if (child == 0) exec_process_main(spec, channel, cli_pid);
    channel.send(SyncMsg::child_pid, std::to_string(child));
    ::_exit(0);
  } catch (const std::exception& e) {
    try {
      channel.send(SyncMsg::error, e.what());
    } catch (...) {
    }
    ::_exit(1);
  }
}

}  // namespace

pid_t launch_exec(ExecSpec& spec) {
  auto [parent_end, child_end] = SyncChannel::make_pair();
  UniqueFd cgroup_fd(spec.cgroups->unified_dir_fd());
  const pid_t cli_pid = ::getpid();
  pid_t stage = clone_process(0, cgroup_fd.get());
  if (stage == 0) {
    parent_end.close();
    exec_stage(spec, std::move(child_end), cli_pid, cgroup_fd.valid());
  }
  child_end.close();

  pid_t child = 0;
  auto first = parent_end.recv();
  wait_pid(stage);
  if (first.type == SyncMsg::error) throw ExecStartError(first.payload);
  if (first.type != SyncMsg::child_pid) throw ExecStartError("exec: setup process exited unexpectedly");
  child = std::stoi(first.payload);
  // The channel closes on a successful execve (CLOEXEC); anything else is the reason it failed.
  auto result = parent_end.recv();
  if (result.type == SyncMsg::eof) return child;
  wait_pid(child);
  throw ExecStartError(result.type == SyncMsg::error ? result.payload : "exec: unexpected message");
}

}  // namespace deltabox
