#include "process/container_init.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/keyctl.h>

#include "linux/console.hpp"
#include "linux/netlink.hpp"
#include "linux/personality.hpp"
#include "linux/rlimits.hpp"
#include "linux/rootfs.hpp"
#include "linux/safe_path.hpp"
#include "linux/scheduler.hpp"
#include "linux/namespaces.hpp"
#include "process/clone.hpp"
#include "process/finalize.hpp"
#include "process/hooks.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

bool has_ns(const oci::Config& c, oci::NamespaceType t) { return c.has_namespace(t); }

void join_session_keyring(const std::string& id) {
  // A per-container session keyring keeps the host's keys out of reach, as runc does.
  std::string name = "_ses." + id;
  ::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.c_str());
}

// runc creates a missing working directory inside the rootfs rather than failing.
void create_cwd(const std::filesystem::path& rootfs, const std::string& cwd) {
  if (cwd.empty() || cwd == "/") return;
  UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno(fmt::format("open rootfs {}", rootfs.string()));
  mkdir_all_in_root(root.get(), cwd, 0755);
}

HookState hook_state(const InitContext& ctx, oci::Status status) {
  HookState state{ctx.id, status, ctx.host_pid, ctx.bundle.string(), ctx.config->annotations};
  return state;
}

// The parent runs prestart and createRuntime in the runtime namespace and tells us our pid as
// the host sees it; createContainer runs here, in the container's namespaces before pivot_root.
void run_create_hooks(InitContext& ctx, const SyncChannel& parent) {
  const auto& hooks = ctx.config->hooks;
  if (!hooks) return;
  parent.send(SyncMsg::run_hooks, "createRuntime");
  ctx.host_pid = std::stoi(parent.expect(SyncMsg::proceed, "createRuntime hooks"));
  run_hooks(hooks->create_container, hook_state(ctx, oci::Status::creating), "createContainer");
}

void setup_rootfs(InitContext& ctx, const SyncChannel& parent) {
  const auto& config = *ctx.config;
  const bool in_userns = has_ns(config, oci::NamespaceType::user);
  MountContext mounts{config, ctx.rootfs.string(), ctx.bundle.string(), in_userns,
                      [&](const std::string& target, unsigned long flags) {
                        cgroups::mount_cgroupfs(target, *ctx.cgroups,
                                                has_ns(config, oci::NamespaceType::cgroup), flags);
                      },
                      config.linux ? config.linux->mount_label : std::string()};
  prepare_rootfs(mounts, ctx.no_pivot, [&] {
    create_cwd(ctx.rootfs, config.process->cwd);
    run_create_hooks(ctx, parent);
  });
}

// /dev/console is the pty slave, bind-mounted over the placeholder file the rootfs created.
void bind_console(const std::string& slave_path) {
  if (::mount(slave_path.c_str(), "/dev/console", nullptr, MS_BIND, nullptr) < 0)
    throw_errno(fmt::format("bind {} on /dev/console", slave_path));
}

void setup_console(const InitContext& ctx) {
  const auto& process = *ctx.config->process;
  if (!process.terminal) return;
  Pty pty = open_pty("/dev/ptmx");
  if (process.console_size)
    set_window_size(pty.master.get(), static_cast<uint16_t>(process.console_size->height),
                    static_cast<uint16_t>(process.console_size->width));
  if (has_ns(*ctx.config, oci::NamespaceType::mount)) bind_console(pty.slave_path);
  send_fd(ctx.console_socket, pty.master.get(), "/dev/ptmx");
  ::close(ctx.console_socket);
  make_controlling_terminal(pty.slave.get());
  dup_onto_stdio(pty.slave.get());
}

// The fifo stays open until execve closes it: `start` waits for that to return only once the
// user's process runs (and startContainer hooks are done).
void wait_for_start(int fifo) {
  char byte;
  for (;;) {
    ssize_t n = ::read(fifo, &byte, 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    throw_errno("wait for start");
  }
}

[[noreturn]] void init_main(InitContext& ctx, const SyncChannel& parent) {
  const auto& config = *ctx.config;
  const auto& process = *config.process;
  if (::setsid() < 0) throw_errno("setsid");
  if (ctx.new_keyring) join_session_keyring(ctx.id);
  if (has_ns(config, oci::NamespaceType::network) && !config.find_namespace(oci::NamespaceType::network)->path.size())
    bring_up_loopback();
  if (has_ns(config, oci::NamespaceType::mount)) {
    setup_rootfs(ctx, parent);
  } else {
    run_create_hooks(ctx, parent);
    if (::chroot(ctx.rootfs.c_str()) < 0) throw_errno("chroot");
    if (::chdir("/") < 0) throw_errno("chdir /");
  }
  setup_console(ctx);
  if (has_ns(config, oci::NamespaceType::mount)) finalize_rootfs(config);
  if (has_ns(config, oci::NamespaceType::uts)) {
    if (!config.hostname.empty()) set_hostname(config.hostname);
    if (!config.domainname.empty()) set_domainname(config.domainname);
  }
  if (process.oom_score_adj) set_oom_score_adj(*process.oom_score_adj);
  apply_scheduling(process, cpuset_cpus_configured(config));
  apply_rlimits(process.rlimits);

  oci::Process effective = process;
  effective.env.insert(effective.env.end(), ctx.extra_env.begin(), ctx.extra_env.end());
  ExecTarget target = resolve_exec_target(effective);
  std::optional<oci::Seccomp> seccomp = config.linux ? config.linux->seccomp : std::nullopt;
  // runc's syncParentSeccomp: the parent copies our notify fd and sends it to the agent.
  const SeccompFdHandoff handoff = [&parent](int notify_fd) {
    parent.send(SyncMsg::seccomp_fd, std::to_string(notify_fd));
    parent.expect(SyncMsg::proceed, "seccomp notify fd");
  };
  become_process_identity(effective, seccomp, handoff);
  // runc's place: after the user switch and the non-NNP seccomp filter, before reporting ready,
  // so a refused personality fails `create`. The domain survives execve.
  if (config.linux && config.linux->personality) apply_personality(*config.linux->personality);
  // The parent is gone after `start`, so a filter whose fd goes to an agent is loaded before
  // reporting ready, as runc (>= 1.1) does with every no_new_privs filter.
  const bool early_final = seccomp && !seccomp->listener_path.empty() && effective.no_new_privileges;
  if (early_final) apply_final_security(effective, seccomp, handoff);

  parent.send(SyncMsg::ready);
  // The parent saves the state, then lets us outlive it.
  parent.expect(SyncMsg::proceed, "save container state");
  if (::prctl(PR_SET_PDEATHSIG, 0) < 0) throw_errno("clear parent death signal");
  parent.send(SyncMsg::ready);

  wait_for_start(ctx.start_fifo);
  if (config.hooks) run_hooks(config.hooks->start_container, hook_state(ctx, oci::Status::created), "startContainer");
  if (!early_final) apply_final_security(effective, seccomp);
  exec_target(target);
}

}  // namespace

void run_container_init(InitContext& ctx, const SyncChannel& parent) {
  try {
    init_main(ctx, parent);
  } catch (const std::exception& e) {
    try {
      parent.send(SyncMsg::error, e.what());
    } catch (...) {
    }
    // After `start` the parent is gone; stderr is the container's, the only place left.
    ::dprintf(2, "deltabox: %s\n", e.what());
  }
  ::_exit(127);
}

}  // namespace deltabox
