#include "process/exec_launcher.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/console.hpp"
#include "linux/personality.hpp"
#include "linux/rlimits.hpp"
#include "linux/scheduler.hpp"
#include "linux/seccomp_notify.hpp"
#include "process/clone.hpp"
#include "process/finalize.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

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
    // The CLI sets our final CPU affinity now that we are in the container's cgroup; nothing
    // of the container's may run before that.
    channel.expect(SyncMsg::proceed, "final CPU affinity");
    setup_exec_console(spec);
    if (spec.process.oom_score_adj) set_oom_score_adj(*spec.process.oom_score_adj);
    apply_scheduling(spec.process, spec.cpuset_cpus);
    apply_rlimits(spec.process.rlimits);
    oci::Process process = spec.process;
    process.env.insert(process.env.end(), spec.extra_env.begin(), spec.extra_env.end());
    ExecTarget target = resolve_exec_target(process);
    const SeccompFdHandoff handoff = [&channel](int notify_fd) {
      channel.send(SyncMsg::seccomp_fd, std::to_string(notify_fd));
      channel.expect(SyncMsg::proceed, "seccomp notify fd");
    };
    become_process_identity(process, spec.seccomp, handoff);
    // As runc's setns init: after the identity, before the no_new_privs seccomp filter.
    if (spec.personality) apply_personality(*spec.personality);
    apply_final_security(process, spec.seccomp, handoff);
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

std::string cpu_list_of(const std::vector<unsigned>& cpus) {
  std::string list;
  for (unsigned cpu : cpus) list += (list.empty() ? "" : ",") + std::to_string(cpu);
  return list;
}

// execCPUAffinity.initial must hold "before the transition to the container's cgroup", but the
// setup stage is born inside it (CLONE_INTO_CGROUP). So, like runc's startWithCPUAffinity, the
// calling thread takes `initial` for the clone, which the stage inherits, and gets its own
// affinity back when this goes out of scope.
class InitialCpuAffinity {
 public:
  explicit InitialCpuAffinity(const std::optional<oci::CpuAffinity>& affinity) {
    if (!affinity || affinity->initial.empty()) return;
    saved_ = cpu_list_of(get_cpu_affinity(0));
    apply_initial_cpu_affinity(*affinity);
  }
  ~InitialCpuAffinity() {
    if (saved_.empty()) return;
    try {
      apply_cpu_affinity(saved_, 0);
    } catch (const std::exception& e) {
      log::warn("restore the runtime's CPU affinity: {}", e.what());
    }
  }
  InitialCpuAffinity(const InitialCpuAffinity&) = delete;
  InitialCpuAffinity& operator=(const InitialCpuAffinity&) = delete;

 private:
  std::string saved_;
};

pid_t clone_exec_stage(ExecSpec& spec, SyncChannel& child_end, SyncChannel& parent_end) {
  UniqueFd cgroup_fd(spec.cgroups->unified_dir_fd());
  const pid_t cli_pid = ::getpid();
  InitialCpuAffinity initial(spec.process.exec_cpu_affinity);
  pid_t stage = clone_process(0, cgroup_fd.get());
  if (stage == 0) {
    parent_end.close();
    exec_stage(spec, std::move(child_end), cli_pid, cgroup_fd.valid());
  }
  return stage;
}

// runc's setFinalCPUAffinity, after the cgroup join and before the process goes on: `final`,
// or every CPU (clamped by the cgroup's cpuset) so it keeps neither `initial` nor the CLI's.
void release_with_final_affinity(const ExecSpec& spec, const SyncChannel& channel, pid_t child) {
  try {
    const auto& affinity = spec.process.exec_cpu_affinity;
    apply_final_cpu_affinity(affinity ? &*affinity : nullptr, child);
    channel.send(SyncMsg::proceed);
  } catch (const std::exception& e) {
    ::kill(child, SIGKILL);
    wait_pid(child);
    throw ExecStartError(e.what());
  }
}

}  // namespace

pid_t launch_exec(ExecSpec& spec) {
  auto [parent_end, child_end] = SyncChannel::make_pair();
  pid_t stage = clone_exec_stage(spec, child_end, parent_end);
  child_end.close();

  pid_t child = 0;
  auto first = parent_end.recv();
  wait_pid(stage);
  if (first.type == SyncMsg::error) throw ExecStartError(first.payload);
  if (first.type != SyncMsg::child_pid) throw ExecStartError("exec: setup process exited unexpectedly");
  child = std::stoi(first.payload);
  release_with_final_affinity(spec, parent_end, child);
  // The channel closes on a successful execve (CLOEXEC); anything else is the reason it failed.
  auto result = parent_end.recv();
  if (result.type == SyncMsg::seccomp_fd) {
    try {
      receive_seccomp_fd(parent_end, child, result.payload, spec.send_seccomp_fd);
    } catch (const std::exception& e) {
      ::kill(child, SIGKILL);
      wait_pid(child);
      throw ExecStartError(e.what());
    }
    result = parent_end.recv();
  }
  if (result.type == SyncMsg::eof) return child;
  wait_pid(child);
  throw ExecStartError(result.type == SyncMsg::error ? result.payload : "exec: unexpected message");
}

}  // namespace deltabox
