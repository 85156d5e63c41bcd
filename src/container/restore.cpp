// `restore`: like create (state dir, cgroups, pid file, console socket), but the init is the
// process tree CRIU restores from a checkpoint's images, and the container is running at once.
//
// Cgroups: CRIU is spawned straight into the new container's cgroups (CLONE_INTO_CGROUP for
// cgroup2, tasks files for v1) and restores with manage_cgroups_mode=ignore, so every restored
// task is born there. CRIU's own cgroup restore would put the tasks back at the paths recorded
// in the images, which are another container's when the caller renamed it (crun#1651), and
// would create cgroups we did not make. An explicit --manage-cgroups-mode is passed on as given.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "container/bundle.hpp"
#include "container/checkpoint_common.hpp"
#include "container/checkpoint_externals.hpp"
#include "container/container.hpp"
#include "container/validate.hpp"
#include "criu/client.hpp"
#include "criu/pids.hpp"
#include "linux/console.hpp"
#include "linux/netlink.hpp"
#include "linux/safe_path.hpp"
#include "process/hooks.hpp"
#include "process/in_namespaces.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

void check_console(const oci::Config& config, const RestoreOptions& options) {
  const bool socket = !options.create.console_socket.empty() || options.create.console_socket_fd >= 0;
  if (config.process->terminal && options.detach && !socket)
    fail("cannot allocate tty if runc will detach without setting console socket");
  if (!config.process->terminal && socket) fail("cannot use console socket if runc will not detach or allocate tty");
}

bool under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

// runc's prepareCriuRestoreMounts: CRIU mounts onto existing mountpoints only, and a rootfs
// unpacked afresh (podman restore --import) lacks the ones the first create made. Mountpoints
// inside a tmpfs come back with the tmpfs' content.
void make_mountpoints(const oci::Config& config, const std::filesystem::path& rootfs,
                      const std::filesystem::path& bundle) {
  std::vector<std::string> tmpfs;
  for (const auto& m : config.mounts)
    if (m.type == "tmpfs") tmpfs.push_back(clean_path("/" + m.destination));
  UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno(fmt::format("open rootfs {}", rootfs.string()));
  for (const auto& m : config.mounts) {
    const std::string dest = clean_path("/" + m.destination);
    if (dest == "/" || m.type == "cgroup" || m.type == "cgroup2") continue;
    if (std::any_of(tmpfs.begin(), tmpfs.end(), [&](const std::string& t) { return under(dest, t); })) continue;
    try {
      struct stat st {};
      std::filesystem::path src = m.source.value_or("");
      if (src.is_relative()) src = bundle / src;
      if (is_bind_mount(m) && ::stat(src.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
        create_file_in_root(root.get(), dest, 0644);
      else
        mkdir_all_in_root(root.get(), dest, 0755);
    } catch (const Error& e) {
      throw Error(fmt::format("create criu restore mountpoint for {} mount: {}", dest, e.what()));
    }
  }
}

// CRIU wants the root to be a mount point whose parent is not overmounted: bind the rootfs into
// the state dir for the duration of the restore (runc's criu-root).
class RootBind {
 public:
  RootBind(const std::filesystem::path& at, const std::filesystem::path& rootfs) : path_(at) {
    if (::mkdir(path_.c_str(), 0755) < 0) throw_errno(fmt::format("mkdir {}", path_.string()));
    if (::mount(rootfs.c_str(), path_.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
      int err = errno;
      ::rmdir(path_.c_str());
      throw_errno(err, fmt::format("bind-mount {} on {}", rootfs.string(), path_.string()));
    }
    // Private: nothing CRIU mounts beneath it may propagate back to the host.
    if (::mount(nullptr, path_.c_str(), nullptr, MS_PRIVATE | MS_REC, nullptr) < 0) {
      int err = errno;
      release();
      throw_errno(err, fmt::format("make {} private", path_.string()));
    }
  }
  RootBind(const RootBind&) = delete;
  RootBind& operator=(const RootBind&) = delete;
  ~RootBind() { release(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release() noexcept {
    if (path_.empty()) return;
    if (::umount2(path_.c_str(), MNT_DETACH) < 0) log::warn("unmount {}: {}", path_.string(), std::strerror(errno));
    ::rmdir(path_.c_str());
    path_.clear();
  }
  std::filesystem::path path_;
};

// What masked directories bind (read-only): stays empty, and goes with the state dir.
std::filesystem::path make_empty_dir(const std::filesystem::path& state_dir) {
  auto dir = state_dir / "empty";
  if (::mkdir(dir.c_str(), 0555) < 0 && errno != EEXIST) throw_errno(fmt::format("mkdir {}", dir.string()));
  return dir;
}

// The caller's stdio, where the checkpoint recorded pipes (runc) or outside files (deltabox),
// handed to CRIU in place of the dumped ones. Duplicated above 2: CRIU's own 0-2 are /dev/null.
struct Stdio {
  std::vector<UniqueFd> fds;
  std::vector<std::pair<std::string, int>> inherit_fd;
};

Stdio caller_stdio(const std::vector<std::string>& descriptors, const std::vector<std::string>& files) {
  Stdio out;
  for (int fd = 0; fd < 3; ++fd) {
    const size_t i = static_cast<size_t>(fd);
    std::string key;
    if (i < descriptors.size() && descriptors[i].find("pipe:") != std::string::npos) key = descriptors[i];
    else if (i < files.size()) key = files[i];
    if (key.empty()) continue;
    UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!dup) throw_errno(fmt::format("dup fd {} for the restored process", fd));
    out.inherit_fd.emplace_back(key, dup.get());
    out.fds.push_back(std::move(dup));
  }
  return out;
}

criu::SpawnOptions spawn_into(const cgroups::Manager& cgroups, const std::string& criu_path, int cgroup2_fd) {
  criu::SpawnOptions s;
  if (!criu_path.empty()) s.criu_path = criu_path;
  s.cgroup2_fd = cgroup2_fd;
  for (const auto& p : cgroups.placements())
    if (!p.hierarchy.unified()) s.cgroup_v1_dirs.push_back(p.dir);
  return s;
}

// A network namespace of the container's own comes back empty (empty_ns, as with runc): not
// even lo is up, and a socket bound to 127.0.0.1 could not be restored. Bring lo up the moment
// CRIU has made the namespaces, before it restores any socket. (runc leaves lo down.)
bool needs_loopback(const oci::Config& config) {
  for (const auto& ns : config.linux->namespaces)
    if (ns.type == oci::NamespaceType::network) return ns.path.empty();
  return false;
}

void bring_up_loopback_of(pid_t pid) {
  UniqueFd pidfd = criu::pidfd_open(pid);
  run_in_namespaces(pidfd.get(), CLONE_NEWNET, bring_up_loopback);
}

void cleanup_failed(cgroups::Manager* cgroups) {
  if (!cgroups) return;
  try {
    if (!cgroups->empty()) {
      cgroups->kill_all(SIGKILL);
      cgroups->wait_empty(std::chrono::seconds(10));
    }
    cgroups->destroy();
  } catch (const std::exception& e) {
    log::warn("cleanup after failed restore: {}", e.what());
  }
}

}  // namespace

Container Container::restore(const StateStore& store, const RestoreOptions& options) {
  const CreateOptions& co = options.create;
  oci::Config config = load_bundle_config(co.bundle);
  const auto rootfs = rootfs_of(config, co.bundle);
  check_console(config, options);
  const auto cgroup_mode = parse_cgroup_mode(options.manage_cgroups_mode);
  const uint32_t empty_ns = parse_empty_ns(options.empty_ns);
  const auto descriptors = load_descriptors(options.image_path);
  const auto stdio_files = load_external_stdio(options.image_path);
  UniqueFd images = open_dir(options.image_path);
  UniqueFd work;
  if (!options.work_path.empty()) {
    make_dirs(options.work_path, 0700);
    work = open_dir(options.work_path);
  }

  ContainerLock lock = store.create_dir(co.id);
  ContainerState state;
  state.id = co.id;
  state.bundle = co.bundle;
  state.rootfs = rootfs;
  state.config = oci::to_json(config);
  state.systemd_cgroup = co.systemd_cgroup;
  state.rootless = co.rootless;

  std::unique_ptr<cgroups::Manager> cgroups;
  try {
    cgroups = cgroups::Manager::for_container(config.linux->cgroups_path, co.id, co.systemd_cgroup);
    cgroups->create();
    state.cgroup = cgroups->to_state();
    if (config.linux->resources) cgroups->apply(*config.linux->resources);
    UniqueFd console;
    if (!co.console_socket.empty()) console = connect_console_socket(co.console_socket);
    const int console_fd = console ? console.get() : co.console_socket_fd;

    make_mountpoints(config, rootfs, co.bundle);
    RootBind root(store.dir(co.id) / "criu-root", rootfs);
    auto namespaces = restore_external_namespaces(config);
    Stdio stdio = caller_stdio(descriptors, stdio_files);

    criu::RestoreOptions o;
    o.images_dir_fd = images.get();
    o.work_dir_fd = work.get();
    o.root = root.path().string();
    o.tcp_established = options.tcp_established;
    o.ext_unix_sk = options.ext_unix_sk;
    o.shell_job = options.shell_job;
    o.file_locks = options.file_locks;
    o.orphan_pts_master = config.process->terminal;
    o.manage_cgroups_mode = cgroup_mode.value_or(criu::CgroupMode::ignore);
    o.empty_ns = empty_ns;
    o.skip_network_lock = !options.tcp_established;
    o.lsm_profile = options.lsm_profile;
    o.lsm_mount_context = options.lsm_mount_context;
    o.ext_mnt = restore_external_mounts(config, co.bundle, *cgroups, make_empty_dir(store.dir(co.id)));
    o.inherit_fd = stdio.inherit_fd;
    o.inherit_fd.insert(o.inherit_fd.end(), namespaces.inherit_fd.begin(), namespaces.inherit_fd.end());
    o.join_ns = namespaces.join_ns;
    const bool own_netns = needs_loopback(config);
    o.notify = [&](criu::Notification& n) {
      if (n.script != "setup-namespaces" || !n.pid) return;
      if (own_netns) bring_up_loopback_of(*n.pid);
      if (!config.hooks) return;
      HookState hook{co.id, oci::Status::creating, *n.pid, co.bundle.string(), config.annotations};
      run_hooks(config.hooks->prestart, hook, "prestart");
      run_hooks(config.hooks->create_runtime, hook, "createRuntime");
    };

    UniqueFd cgroup2(cgroups->unified_dir_fd());
    criu::RestoreResult restored;
    try {
      restored = criu::Client(spawn_into(*cgroups, options.criu_path, cgroup2.get())).restore(o);
    } catch (const criu::CriuError& e) {
      throw_criu_failure(e, "RESTORE", (options.work_path.empty() ? options.image_path : options.work_path) / o.log_file);
    }
    if (restored.pts_master) {
      if (console_fd < 0) fail("the restored container has a terminal but no console socket to send it to");
      send_fd(console_fd, restored.pts_master.get(), "/dev/ptmx");
    }
    state.init_pid = restored.host_pid;
    state.init_start_time = process_start_time(restored.host_pid);
    state.created = rfc3339_nano_now();
    if (!co.pid_file.empty()) write_pid_file(co.pid_file, restored.host_pid);
    store.save(co.id, state.to_json());
  } catch (...) {
    cleanup_failed(cgroups.get());
    if (!co.pid_file.empty()) ::unlink(co.pid_file.c_str());
    store.remove_dir(co.id);
    throw;
  }
  return Container(store, std::move(state), std::move(lock));
}

}  // namespace deltabox
