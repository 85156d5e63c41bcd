#include "container/generation_criu.hpp"


#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "container/bundle.hpp"
#include "container/generation.hpp"
#include "container/snapshot_setup.hpp"
#include "criu/pids.hpp"
#include "delta/overlay.hpp"
#include "linux/namespaces.hpp"
#include "linux/mount_options.hpp"
#include "process/in_namespaces.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {

std::string mount_key(const oci::Mount& m) { return "ext" + m.destination; }

std::string bind_source(const oci::Mount& m, const std::filesystem::path& bundle) {
  std::filesystem::path src = m.source.value_or("");
  return (src.is_relative() ? bundle / src : src).lexically_normal().string();
}

criu::SpawnOptions spawn_in_anchor(const GenerationCriu& c, int anchor_pidfd) {
  criu::SpawnOptions s;
  if (!c.criu_path.empty()) s.criu_path = c.criu_path;
  s.ns_pidfd = anchor_pidfd;
  s.ns_flags = criu_namespace_flags(c.config);
  if (c.lock_fd >= 0) s.inherit_fds.push_back(c.lock_fd);
  return s;
}

UniqueFd anchor_pidfd(const ContainerState& state) {
  UniqueFd fd = criu::pidfd_open(state.init_pid);
  if (!fd || !same_process_alive(state.init_pid, state.init_start_time)) fail("container not running");
  return fd;
}

// The generation's init as the anchor's pid namespace numbers it (second NSpid entry).
pid_t pid_in_anchor_namespace(pid_t host_pid) {
  auto pids = criu::ns_pids(host_pid);
  if (pids.size() < 2) fail("generation process {} is gone", host_pid);
  return pids[1];
}

std::string cgroup_key(const CgroupMountRef& ref) { return "cg" + ref.mountpoint; }

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

// The target container's dir in the hierarchy a generation's cgroup mount showed.
std::string placement_dir(const cgroups::Manager& container, const CgroupMountRef& ref) {
  const auto wanted = split(ref.controllers, ',');
  for (const auto& p : container.placements()) {
    if (ref.controllers.empty() ? p.hierarchy.unified()
                                : (!p.hierarchy.unified() &&
                                   std::all_of(wanted.begin(), wanted.end(), [&](const std::string& c) { return p.hierarchy.has(c); })))
      return p.dir;
  }
  fail("no cgroup hierarchy \"{}\" for the mount at {}", ref.controllers.empty() ? "cgroup2" : ref.controllers,
       ref.mountpoint);
}

}  // namespace

std::vector<CgroupMountRef> cgroup_mounts_of(pid_t pid) {
  std::vector<CgroupMountRef> out;
  std::istringstream lines(read_file(fmt::format("/proc/{}/mountinfo", pid)));
  for (std::string line; std::getline(lines, line);) {
    // id parent maj:min root mountpoint options [optional...] - fstype source superoptions
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto left = split(line.substr(0, dash), ' ');
    auto right = split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    if (right[0] == "cgroup2") {
      out.push_back({left[4], ""});
    } else if (right[0] == "cgroup") {
      std::vector<std::string> controllers;
      for (const auto& opt : split(right[2], ','))
        if (opt != "rw" && opt != "ro" && opt.find("clone_children") == std::string::npos && opt != "noprefix" &&
            opt.rfind("release_agent", 0) != 0 && opt != "cpuset_v2_mode" && opt != "xattr" && opt != "favordynmods")
          controllers.push_back(opt);
      std::string joined;
      for (const auto& c : controllers) joined += (joined.empty() ? "" : ",") + c;
      out.push_back({left[4], joined});
    }
  }
  return out;
}

nlohmann::json DumpExternals::to_json() const {
  nlohmann::json mounts = nlohmann::json::array();
  for (const auto& r : cgroup_mounts) mounts.push_back({{"mountpoint", r.mountpoint}, {"controllers", r.controllers}});
  return {{"cgroup_mounts", mounts}, {"stdio", stdio}};
}

DumpExternals DumpExternals::from_json(const nlohmann::json& json) {
  DumpExternals out;
  for (const auto& r : json.value("cgroup_mounts", nlohmann::json::array()))
    out.cgroup_mounts.push_back({r.at("mountpoint").get<std::string>(), r.at("controllers").get<std::string>()});
  out.stdio = json.value("stdio", std::vector<std::string>{});
  return out;
}

std::vector<std::string> shared_stdio_keys(pid_t workload, pid_t anchor) {
  auto keys = stdio_keys(workload);
  for (int fd = 0; fd < 3; ++fd) {
    struct stat ours {}, anchors {};
    if (::stat(fmt::format("/proc/{}/fd/{}", workload, fd).c_str(), &ours) < 0 ||
        ::stat(fmt::format("/proc/{}/fd/{}", anchor, fd).c_str(), &anchors) < 0 || ours.st_dev != anchors.st_dev ||
        ours.st_ino != anchors.st_ino)
      keys[static_cast<size_t>(fd)].clear();
  }
  return keys;
}

int criu_namespace_flags(const oci::Config& config) {
  int flags = CLONE_NEWPID | CLONE_NEWNS;
  if (config.linux)
    for (const auto& ns : config.linux->namespaces) flags |= clone_flag(ns.type);
  return flags & ~CLONE_NEWUSER;
}

DumpExternals dump_generation(const GenerationCriu& c, const std::string& generation, int images_dir_fd) {
  const auto& snap = *c.state.snapshots;
  UniqueFd pidfd = anchor_pidfd(c.state);
  auto leaf = leaf_cgroup(c.container_cgroup, generation_paths({}, generation).cgroup_leaf, true);
  criu::DumpOptions o;
  o.pid = pid_in_anchor_namespace(snap.workload_pid);
  o.images_dir_fd = images_dir_fd;
  o.leave_running = true;
  o.freeze_cgroup = leaf->path("");
  if (o.freeze_cgroup.empty()) o.freeze_cgroup = leaf->path("freezer");
  o.manage_cgroups_mode = criu::CgroupMode::ignore;
  o.skip_network_lock = true;
  o.file_locks = true;
  for (const auto& m : c.config.mounts)
    if (is_bind_mount(m)) o.ext_mnt.emplace_back(m.destination, mount_key(m));
  DumpExternals externals;
  externals.stdio = shared_stdio_keys(snap.workload_pid, c.state.init_pid);
  for (const auto& key : externals.stdio)
    if (key.rfind("file[", 0) == 0) o.external.push_back(key);
  externals.cgroup_mounts = cgroup_mounts_of(snap.workload_pid);
  for (const auto& ref : externals.cgroup_mounts) o.ext_mnt.emplace_back(ref.mountpoint, cgroup_key(ref));
  criu::Client(spawn_in_anchor(c, pidfd.get())).dump(o);
  return externals;
}

criu::RestoreResult restore_generation(const GenerationCriu& c, const std::string& generation, int images_dir_fd,
                                       const DumpExternals& externals, bool leave_stopped) {
  const auto& snap = *c.state.snapshots;
  UniqueFd pidfd = anchor_pidfd(c.state);
  auto paths = generation_paths(container_store_dir(snap.store, c.state.id), generation);
  auto leaf = leaf_cgroup(c.container_cgroup, paths.cgroup_leaf, true);
  criu::SpawnOptions spawn = spawn_in_anchor(c, pidfd.get());
  UniqueFd leaf_fd(leaf->unified_dir_fd());
  spawn.cgroup2_fd = leaf_fd.get();
  for (const auto& p : leaf->placements())
    if (!p.hierarchy.unified()) spawn.cgroup_v1_dirs.push_back(p.dir);

  criu::RestoreOptions o;
  o.images_dir_fd = images_dir_fd;
  o.work_dir_fd = c.work_dir_fd;
  o.root = paths.merged.string();
  o.leave_stopped = leave_stopped;
  o.manage_cgroups_mode = criu::CgroupMode::ignore;
  o.skip_network_lock = true;
  o.file_locks = true;
  for (const auto& m : c.config.mounts)
    if (is_bind_mount(m)) o.ext_mnt.emplace_back(mount_key(m), bind_source(m, c.state.bundle));
  for (const auto& ref : externals.cgroup_mounts)
    o.ext_mnt.emplace_back(cgroup_key(ref), placement_dir(c.container_cgroup, ref));
  // The anchor holds the container's original stdio: the new generation reconnects to it.
  std::vector<UniqueFd> stdio;
  for (size_t fd = 0; fd < externals.stdio.size(); ++fd) {
    if (externals.stdio[fd].empty()) continue;
    UniqueFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), static_cast<int>(fd), 0)));
    if (!dup) throw_errno(fmt::format("take fd {} of the container anchor", fd));
    o.inherit_fd.emplace_back(externals.stdio[fd], dup.get());
    stdio.push_back(std::move(dup));
  }
  return criu::Client(spawn).restore(o);
}

void mount_generation_root(pid_t anchor, const std::vector<std::string>& lowers, const std::filesystem::path& upper,
                           const std::filesystem::path& work, const std::filesystem::path& merged) {
  delta::OverlayLayers layers;
  for (const auto& l : lowers) layers.lowers.emplace_back(l);
  layers.upper = upper;
  layers.work = work;
  UniqueFd pidfd = criu::pidfd_open(anchor);
  run_in_namespaces(pidfd.get(), CLONE_NEWNS, [&] { delta::mount_overlay_at(layers, merged); });
}

void unmount_generation_root(pid_t anchor, const std::filesystem::path& merged) {
  UniqueFd pidfd = criu::pidfd_open(anchor);
  run_in_namespaces(pidfd.get(), CLONE_NEWNS, [&] {
    if (::umount2(merged.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
      throw_errno(fmt::format("unmount {}", merged.string()));
  });
}

}  // namespace deltabox
