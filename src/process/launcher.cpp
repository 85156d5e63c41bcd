#include "process/launcher.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linux/scheduler.hpp"
#include "linux/seccomp_notify.hpp"
#include "process/anchor_init.hpp"
#include "process/clone.hpp"
#include "process/finalize.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

void wait_pid(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// First steps of the setup stage: it must die with the CLI until told otherwise, must not inherit
// our blocked signals, and must keep only its own fds, clear of the ones passed to the container
// (an inherited lock fd would keep the container's lock held until `start`).
void child_preamble(pid_t expected_parent, InitContext& ctx, SyncChannel& channel, NamespacePlan& plan,
                    std::optional<AnchorSpec>& anchor) {
  reset_signals_in_child();
  die_with_parent(expected_parent);
  const int first_free = 3 + ctx.inherited_fds;
  channel = SyncChannel(UniqueFd(move_fd_above(channel.release_fd(), first_free)));
  ctx.console_socket = move_fd_above(ctx.console_socket, first_free);
  ctx.start_fifo = move_fd_above(ctx.start_fifo, first_free);
  std::vector<int> keep{channel.fd(), ctx.console_socket, ctx.start_fifo};
  if (anchor) {
    anchor->anchor_cgroup_fd = move_fd_above(anchor->anchor_cgroup_fd, first_free);
    anchor->generation_cgroup_fd = move_fd_above(anchor->generation_cgroup_fd, first_free);
    keep.push_back(anchor->anchor_cgroup_fd);
    keep.push_back(anchor->generation_cgroup_fd);
  }
  for (auto& [type, fd] : plan.joins) {
    fd = UniqueFd(move_fd_above(fd.release(), first_free));
    keep.push_back(fd.get());
  }
  close_fds_except(first_free, keep);
}

// The setup stage: joins and creates namespaces in the order the kernel needs, then clones the
// init as a sibling (our parent's child) so it is pid 1 of the new pid namespace.
[[noreturn]] void setup_stage(LaunchSpec& spec, NamespacePlan& plan, SyncChannel channel, pid_t cli_pid,
                              bool in_cgroup2) {
  try {
    child_preamble(cli_pid, spec.init, channel, plan, spec.anchor);
    spec.init.cgroups->enter_self(in_cgroup2);
    join_namespaces(plan);
    const auto& config = *spec.init.config;
    if (plan.new_user) {
      if (::unshare(CLONE_NEWUSER) < 0) throw_errno("unshare user namespace");
      channel.send(SyncMsg::map_ids);
      channel.expect(SyncMsg::ids_mapped, "user namespace mappings");
    }
    if (plan.new_user || plan.joins_user()) {
      // Become root of the user namespace where it has one mapped; the process's configured
      // user is set later either way.
      ::setresgid(0, 0, 0);
      ::setresuid(0, 0, 0);
    }
    if (plan.new_flags && ::unshare(plan.new_flags) < 0) throw_errno("unshare namespaces");
    if (config.linux && (plan.new_flags & CLONE_NEWTIME)) write_time_offsets(config.linux->time_offsets);
    // The init talks to the CLI on our channel: it waits until its pid went first.
    int go[2];
    check(::pipe2(go, O_CLOEXEC), "pipe");
    pid_t init = spec.anchor ? clone_process(CLONE_PARENT, spec.anchor->anchor_cgroup_fd) : clone_sibling();
    if (init == 0) {
      die_with_parent(cli_pid);
      ::close(go[1]);
      char byte;
      while (::read(go[0], &byte, 1) < 0 && errno == EINTR) {
      }
      ::close(go[0]);
      if (spec.anchor) run_anchor_init(spec.init, *spec.anchor, channel);
      run_container_init(spec.init, channel);
    }
    channel.send(SyncMsg::child_pid, std::to_string(init));
    ::_exit(0);  // closing our end of `go` lets the init start
  } catch (const std::exception& e) {
    try {
      channel.send(SyncMsg::error, e.what());
    } catch (...) {
    }
    ::_exit(1);
  }
}

}  // namespace

void LaunchedInit::release(const std::string& payload) {
  channel.send(SyncMsg::proceed, payload);
  channel.expect(SyncMsg::ready, "container init");
}

void LaunchedInit::kill_and_reap() {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  wait_pid(pid);
  pid = 0;
}

LaunchedInit launch_init(LaunchSpec& spec) {
  const auto& config = *spec.init.config;
  NamespacePlan plan = plan_namespaces(config);
  auto [parent_end, child_end] = SyncChannel::make_pair();
  UniqueFd cgroup_fd(spec.init.cgroups->unified_dir_fd());
  const pid_t cli_pid = ::getpid();

  pid_t stage = clone_process(0, cgroup_fd.get());
  if (stage == 0) {
    parent_end.close();
    setup_stage(spec, plan, std::move(child_end), cli_pid, cgroup_fd.valid());
  }
  child_end.close();
  plan.joins.clear();

  LaunchedInit init;
  init.channel = std::move(parent_end);
  bool stage_reaped = false;
  try {
    for (;;) {
      auto msg = init.channel.recv();
      switch (msg.type) {
        case SyncMsg::map_ids:
          write_id_mappings(stage, config.linux->uid_mappings, config.linux->gid_mappings);
          init.channel.send(SyncMsg::ids_mapped);
          break;
        case SyncMsg::child_pid:
          init.pid = std::stoi(msg.payload);
          // runc's tryResetCPUAffinity: the init is in the container's cgroup now, and must not
          // keep the CLI's affinity (say, `taskset -c 0 deltabox run`) but get the cpuset's.
          reset_cpu_affinity(init.pid);
          wait_pid(stage);
          stage_reaped = true;
          break;
        case SyncMsg::run_hooks:
          if (spec.run_hooks) spec.run_hooks(msg.payload, init.pid);
          init.channel.send(SyncMsg::proceed, std::to_string(init.pid));
          break;
        case SyncMsg::seccomp_fd:
          receive_seccomp_fd(init.channel, init.pid, msg.payload, spec.send_seccomp_fd);
          break;
        case SyncMsg::ready:
          return init;
        case SyncMsg::error:
          throw Error(msg.payload);
        case SyncMsg::eof:
          fail("container init exited during setup");
        default:
          fail("unexpected message {} from container init", static_cast<uint32_t>(msg.type));
      }
    }
  } catch (...) {
    if (!stage_reaped) {
      ::kill(stage, SIGKILL);
      wait_pid(stage);
    }
    init.kill_and_reap();
    throw;
  }
}

}  // namespace deltabox
