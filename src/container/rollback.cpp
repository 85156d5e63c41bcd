// `rollback`: the container becomes exactly what it was at a snapshot — files and processes —
// while its id, anchor (the pid supervisors watch), cgroup, network and stdio stay.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/generation_criu.hpp"
#include "container/snapshot_tree.hpp"
#include "criu/pids.hpp"
#include "delta/store.hpp"
#include "process/anchor.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

UniqueFd open_dir(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

pid_t anchor_namespace_pid(pid_t host_pid) {
  auto pids = criu::ns_pids(host_pid);
  return pids.size() >= 2 ? pids[1] : 0;
}

}  // namespace

std::filesystem::path Container::anchor_socket() const { return store_->dir(state_.id) / "anchor.sock"; }

// Everything of a generation that is no longer running: its mount, leaf cgroup and layer.
void Container::discard_generation(const delta::LayerStore& store, const std::string& generation) {
  const auto paths = generation_paths(container_store_dir(store.root(), state_.id), generation);
  try {
    unmount_generation_root(state_.init_pid, paths.merged);
    auto leaf = leaf_cgroup(*cgroups(), paths.cgroup_leaf, true);
    if (!leaf->empty()) {
      leaf->kill_all(SIGKILL);
      leaf->wait_empty(std::chrono::seconds(10));
    }
    leaf->destroy();
    store.remove(paths.layer);
    std::filesystem::remove(paths.merged);
  } catch (const std::exception& e) {
    log::warn("discard generation {} of {}: {}", generation, state_.id, e.what());
  }
}

void Container::rollback(const std::string& snapshot_ref, const std::string& criu_path) {
  require_snapshots();
  auto status = this->status();
  if (status != oci::Status::running) fail("cannot roll back a container that is {}", oci::status_name(status));
  auto& snap = *state_.snapshots;
  auto store = delta::LayerStore::open(snap.store);
  const auto dir = container_store_dir(store.root(), state_.id);
  SnapshotTree tree(dir);
  auto meta = tree.find(snapshot_ref);
  if (!meta) fail("snapshot {} of container {} does not exist", snapshot_ref, state_.id);

  const std::string old_generation = snap.generation;
  const std::string generation = std::to_string(snap.next_id++);
  store_->save(state_.id, state_.to_json());
  const auto paths = generation_paths(dir, generation);
  oci::Config config = state_.parsed_config();
  auto cgroups = this->cgroups();
  auto leaf = leaf_cgroup(*cgroups, paths.cgroup_leaf);

  // Prepare the new generation's root and cgroup; the old generation still runs meanwhile.
  try {
    store.create_writable(paths.layer, meta->layers.front());
    std::filesystem::create_directories(paths.merged);
    leaf->create();
    mount_generation_root(state_.init_pid, meta->layers, paths.upper, paths.work, paths.merged);
  } catch (...) {
    discard_generation(store, generation);
    throw;
  }

  // Cold: the old generation goes first, so nothing it holds (ports, names) is taken twice.
  auto old_leaf = leaf_cgroup(*cgroups, generation_paths(dir, old_generation).cgroup_leaf, true);
  anchor_request(anchor_socket(), format_activate({0, anchor_namespace_pid(snap.workload_pid), ""}));
  old_leaf->wait_empty(std::chrono::seconds(10));
  try {
    UniqueFd images = open_dir(tree.images(meta->id));
    auto restored = restore_generation({state_, config, *cgroups, criu_path}, generation, images.get(),
                                       DumpExternals::from_json(meta->externals), false);
    anchor_request(anchor_socket(), format_activate({restored.pid, 0, ""}));
    snap.workload_pid = restored.host_pid;
    snap.workload_start_time = process_start_time(restored.host_pid);
  } catch (...) {
    // Nothing runs any more and the snapshot could not come back: stop the container rather
    // than leave a supervisor waiting on an empty one.
    ::kill(state_.init_pid, SIGKILL);
    throw;
  }
  snap.generation = generation;
  snap.layers = meta->layers;
  snap.head = meta->id;
  store_->save(state_.id, state_.to_json());
  discard_generation(store, old_generation);
}

}  // namespace deltabox
