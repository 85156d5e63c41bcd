// `create`: build the container and leave its init waiting on the start fifo.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/bundle.hpp"
#include "container/container.hpp"
#include "container/criu_cache.hpp"
#include "container/generation.hpp"
#include "container/snapshot_setup.hpp"
#include "container/validate.hpp"
#include "linux/console.hpp"
#include "linux/notify_socket.hpp"
#include "linux/seccomp_notify.hpp"
#include "process/hooks.hpp"
#include "process/launcher.hpp"
#include "process/listen_fds.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

UniqueFd make_start_fifo(const std::filesystem::path& path) {
  if (::mkfifo(path.c_str(), 0600) < 0) throw_errno(fmt::format("create {}", path.string()));
  // O_RDWR never blocks on a fifo; the init reads from it until `start` writes a byte.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

// runc's NOTIFY_SOCKET proxy, create's half: the container sees <state dir>/notify at
// /run/notify and NOTIFY_SOCKET in its environment (saved with the config, so exec has it too);
// `start`/`run` bind a fresh socket there and forward READY=1 to the host's socket.
void setup_notify_socket(const std::filesystem::path& state_dir, oci::Config& config) {
  if (auto notify = NotifySocket::from_environment(state_dir)) notify->setup_spec(config);
}

}  // namespace

Container Container::create(const StateStore& store, const CreateOptions& options) {
  return build(store, options, load_bundle_config(options.bundle), nullptr);
}

// create, and fork (fork != nullptr): a fork has its source's config, no `created` phase (no
// start fifo, no hooks, no console) and its first generation restored from the snapshot.
Container Container::build(const StateStore& store, const CreateOptions& options, oci::Config config,
                           const ForkSource* fork) {
  auto rootfs = rootfs_of(config, options.bundle);
  if (!fork) {
    if (config.process->terminal && options.console_socket.empty() && options.console_socket_fd < 0)
      fail("cannot allocate tty if runc will detach without setting console socket");
    if (!config.process->terminal && (!options.console_socket.empty() || options.console_socket_fd >= 0))
      fail("cannot use console socket if runc will not detach or allocate tty");
  }
  const bool snapshots = fork || snapshots_requested(config, options.snapshots);
  if (snapshots)
    if (auto why = snapshot_refusal(config); !why.empty()) fail("cannot enable snapshots: {}", why);

  ContainerLock lock = store.create_dir(options.id);
  if (!fork) {
    try {
      setup_notify_socket(store.dir(options.id), config);
    } catch (...) {
      store.remove_dir(options.id);
      throw;
    }
  }
  ContainerState state;
  state.id = options.id;
  state.bundle = options.bundle;
  state.rootfs = rootfs;
  state.created = rfc3339_nano_now();
  state.config = oci::to_json(config);
  state.systemd_cgroup = options.systemd_cgroup;
  state.rootless = options.rootless;
  state.criu = options.criu;

  std::unique_ptr<cgroups::Manager> cgroups;
  std::unique_ptr<SnapshotSetup> snapshot_setup;
  LaunchedInit init;
  try {
    cgroups = cgroups::Manager::for_container(config.linux->cgroups_path, options.id, options.systemd_cgroup);
    cgroups->create();
    state.cgroup = cgroups->to_state();
    if (config.linux->resources) cgroups->apply(*config.linux->resources);

    UniqueFd fifo;
    if (!fork) fifo = make_start_fifo(store.dir(options.id) / "exec.fifo");
    UniqueFd console;
    if (!options.console_socket.empty()) console = connect_console_socket(options.console_socket);
    LaunchSpec spec;
    spec.init.config = &config;
    spec.init.id = options.id;
    spec.init.bundle = options.bundle;
    spec.init.rootfs = rootfs;
    spec.init.cgroups = cgroups.get();
    spec.init.no_pivot = options.no_pivot;
    spec.init.new_keyring = !options.no_new_keyring;
    spec.init.console_socket = console ? console.get() : options.console_socket_fd;
    spec.init.start_fifo = fifo.get();
    spec.init.inherited_fds = socket_activation_fds(spec.init.extra_env) + options.preserve_fds;
    if (!fork)
      spec.run_hooks = [&](const std::string&, pid_t pid) {
        HookState hook{options.id, oci::Status::creating, pid, options.bundle.string(), config.annotations};
        run_hooks(config.hooks->prestart, hook, "prestart");
        run_hooks(config.hooks->create_runtime, hook, "createRuntime");
      };
    if (const auto& seccomp = config.linux->seccomp; seccomp && !seccomp->listener_path.empty())
      spec.send_seccomp_fd = [&](int notify_fd, pid_t pid) {
        HookState st{options.id, oci::Status::creating, pid, options.bundle.string(), config.annotations};
        send_seccomp_listener(seccomp->listener_path, notify_fd, pid, seccomp->listener_metadata,
                              nlohmann::json::parse(st.to_json()));
      };
    if (snapshots) {
      snapshot_setup = std::make_unique<SnapshotSetup>(options.store, options.id, rootfs, *cgroups,
                                                       store.dir(options.id),
                                                       fork ? fork->layers : std::vector<std::string>{});
      spec.anchor = snapshot_setup->anchor_spec();
      spec.anchor->start_generation = !fork;
      spec.init.rootfs = generation_paths(container_store_dir(options.store, options.id), "0").merged;
    }
    init = launch_init(spec);
    if (snapshot_setup && !fork) seed_criu_cache(options.store, init.pid);

    state.init_pid = init.pid;
    state.init_start_time = process_start_time(init.pid);
    std::string first_generation;
    if (fork) {
      state.snapshots = snapshot_setup->describe_empty();
      Container staged(store, state, ContainerLock());
      auto restored = staged.restore_fork(*fork);
      state = staged.state_;
      first_generation = std::to_string(restored);
    } else if (snapshot_setup) {
      state.snapshots = snapshot_setup->describe(init.pid);
    }
    if (!options.pid_file.empty()) write_pid_file(options.pid_file, init.pid);
    store.save(options.id, state.to_json());
    init.release(first_generation);
    if (snapshot_setup) snapshot_setup->commit();
  } catch (...) {
    init.kill_and_reap();
    if (cgroups) {
      try {
        if (!cgroups->empty()) {
          cgroups->kill_all(SIGKILL);
          cgroups->wait_empty(std::chrono::seconds(10));
        }
        cgroups->destroy();
      } catch (const std::exception& e) {
        log::warn("cleanup after failed create: {}", e.what());
      }
    }
    snapshot_setup.reset();
    if (!options.pid_file.empty()) ::unlink(options.pid_file.c_str());
    store.remove_dir(options.id);
    throw;
  }
  return Container(store, std::move(state), std::move(lock));
}

}  // namespace deltabox
