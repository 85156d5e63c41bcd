#include "container/snapshot_setup.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "container/generation.hpp"
#include "delta/overlay.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox {

bool snapshots_requested(const oci::Config& config, bool flag) {
  if (flag) return true;
  auto it = config.annotations.find(kSnapshotsAnnotation);
  return it != config.annotations.end() && it->second == "true";
}

std::string snapshot_refusal(const oci::Config& config) {
  const auto* pid = config.find_namespace(oci::NamespaceType::pid);
  if (!pid || !pid->path.empty())
    return "snapshots need the container's own pid namespace (it shares the host's or a pod's); "
           "remove the annotation io.deltabox.snapshots or give the container a new pid namespace";
  const auto* mnt = config.find_namespace(oci::NamespaceType::mount);
  if (!mnt || !mnt->path.empty()) return "snapshots need the container's own mount namespace";
  if (config.has_namespace(oci::NamespaceType::user)) return "snapshots of containers with a user namespace are not supported";
  if (config.process && config.process->terminal) return "snapshots of containers with a terminal are not supported yet";
  if (config.linux && config.linux->seccomp && !config.linux->seccomp->listener_path.empty())
    return "snapshots of containers with a seccomp agent (linux.seccomp.listenerPath) are not supported";
  return {};
}

SnapshotSetup::SnapshotSetup(const std::filesystem::path& store_dir, const std::string& id,
                             const std::filesystem::path& rootfs, cgroups::Manager& container_cgroup,
                             const std::filesystem::path& state_dir, const std::vector<std::string>& base_layers)
    : store_(delta::LayerStore::open(store_dir)), dir_(container_store_dir(store_.root(), id)), rootfs_(rootfs) {
  try {
    if (std::filesystem::exists(dir_)) store_.remove(dir_);  // leftovers of a container of the same id
    lowers_ = copy_layers(base_layers);
    lowers_.push_back(rootfs_.string());
    auto gen = generation_paths(dir_, "0");
    store_.create_writable(gen.layer, lowers_.front());
    std::filesystem::create_directories(gen.merged);
    anchor_cgroup_ = leaf_cgroup(container_cgroup, kAnchorCgroupLeaf);
    anchor_cgroup_->create();
    generation_cgroup_ = leaf_cgroup(container_cgroup, gen.cgroup_leaf);
    generation_cgroup_->create();
    anchor_cgroup_fd_.reset(anchor_cgroup_->unified_dir_fd());
    generation_cgroup_fd_.reset(generation_cgroup_->unified_dir_fd());

    delta::OverlayLayers layers{{lowers_.begin(), lowers_.end()}, gen.upper, gen.work};
    anchor_.mount_generation_root = [layers, merged = gen.merged] { delta::mount_overlay_at(layers, merged); };
    anchor_.control_socket = (state_dir / "anchor.sock").string();
    anchor_.anchor_cgroup = anchor_cgroup_.get();
    anchor_.generation_cgroup = generation_cgroup_.get();
    anchor_.anchor_cgroup_fd = anchor_cgroup_fd_.get();
    anchor_.generation_cgroup_fd = generation_cgroup_fd_.get();
  } catch (...) {
    store_.remove(dir_);
    throw;
  }
}

// Layer "<snapshot>/fs/upper" of another container → "<ours>/base/<i>/upper".
std::vector<std::string> SnapshotSetup::copy_layers(const std::vector<std::string>& base_layers) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < base_layers.size(); ++i) {
    auto layer = std::filesystem::path(base_layers[i]).parent_path();
    auto copy = dir_ / "base" / std::to_string(i);
    std::filesystem::create_directories(copy.parent_path());
    store_.snapshot(layer, copy, true);
    out.push_back((copy / "upper").string());
  }
  return out;
}

SnapshotSetup::~SnapshotSetup() {
  if (committed_) return;
  try {
    store_.remove(dir_);
  } catch (const std::exception& e) {
    log::warn("cleanup after failed create: {}", e.what());
  }
}

SnapshotState SnapshotSetup::describe_empty() const {
  SnapshotState s;
  s.store = store_.root();
  s.generation = "0";
  s.layers = lowers_;
  s.next_id = 1;
  return s;
}

SnapshotState SnapshotSetup::describe(pid_t anchor_pid) const {
  SnapshotState s = describe_empty();
  s.workload_pid = first_child(anchor_pid);
  s.workload_start_time = process_start_time(s.workload_pid);
  return s;
}

pid_t first_child(pid_t pid) {
  std::istringstream children(read_file(fmt::format("/proc/{}/task/{}/children", pid, pid)));
  pid_t child = 0;
  if (!(children >> child)) fail("container anchor {} has no workload", pid);
  return child;
}

std::vector<std::string> stdio_keys(pid_t pid) {
  std::vector<std::string> out;
  for (int fd = 0; fd < 3; ++fd) {
    char target[4096];
    auto link = fmt::format("/proc/{}/fd/{}", pid, fd);
    ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    std::string name = n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string();
    struct stat st {};
    if (name.rfind("pipe:", 0) == 0) {
      out.push_back(name);
    } else if (!name.empty() && name[0] == '/' && ::stat(link.c_str(), &st) == 0) {
      std::istringstream info(read_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd)));
      unsigned mnt_id = 0;
      for (std::string field; info >> field;)
        if (field == "mnt_id:") info >> mnt_id;
      out.push_back(fmt::format("file[{:x}:{:x}]", mnt_id, st.st_ino));
    } else {
      out.push_back("");
    }
  }
  return out;
}

}  // namespace deltabox
