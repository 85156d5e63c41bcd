// `rollback`: the container becomes exactly what it was at a snapshot — files and processes —
// while its id, anchor (the pid supervisors watch), cgroup, network and stdio stay.
//
// Warm: a template of the snapshot waits, stopped, beside the live generation; the anchor kills
// the live generation and continues the template in one step. Cold: the live generation goes
// first (so ports and names it holds are free), then CRIU restores the snapshot.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/generation_criu.hpp"
#include "container/helper.hpp"
#include "container/jobs.hpp"
#include "container/snapshot_tree.hpp"
#include "container/templates.hpp"
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

std::string Container::allocate_generation() {
  auto& snap = *state_.snapshots;
  std::string generation = std::to_string(snap.next_id++);
  store_->save(state_.id, state_.to_json());
  return generation;
}

void Container::prepare_generation(const delta::LayerStore& store, const SnapshotMeta& meta,
                                   const std::string& generation) {
  const auto paths = generation_paths(container_store_dir(store.root(), state_.id), generation);
  try {
    store.create_writable(paths.layer, meta.layers.front());
    std::filesystem::create_directories(paths.merged);
    leaf_cgroup(*cgroups(), paths.cgroup_leaf)->create();
    mount_generation_root(state_.init_pid, meta.layers, paths.upper, paths.work, paths.merged);
  } catch (...) {
    discard_generation(store, generation);
    throw;
  }
}

criu::RestoreResult Container::restore_snapshot(const SnapshotTree& tree, const SnapshotMeta& meta,
                                                const std::string& generation, bool leave_stopped,
                                                const std::string& criu_path) {
  UniqueFd images = open_dir(tree.images(meta.id));
  oci::Config config = state_.parsed_config();
  auto cgroups = this->cgroups();
  return restore_generation({state_, config, *cgroups, criu_path}, generation, images.get(),
                            DumpExternals::from_json(meta.externals), leave_stopped);
}

// Everything of a generation that is no longer running: its mount, leaf cgroup and layer.
void Container::discard_generation(const delta::LayerStore& store, const std::string& generation) {
  const auto paths = generation_paths(container_store_dir(store.root(), state_.id), generation);
  try {
    auto leaf = leaf_cgroup(*cgroups(), paths.cgroup_leaf, true);
    if (!leaf->empty()) {
      leaf->kill_all(SIGKILL);
      leaf->wait_empty(std::chrono::seconds(10));
    }
    leaf->destroy();
    if (same_process_alive(state_.init_pid, state_.init_start_time)) unmount_generation_root(state_.init_pid, paths.merged);
    store.remove(paths.layer);
    std::filesystem::remove(paths.merged);
  } catch (const std::exception& e) {
    log::warn("discard generation {} of {}: {}", generation, state_.id, e.what());
  }
}

void Container::switch_generation(const std::string& generation, pid_t host_pid, const SnapshotMeta& meta) {
  auto& snap = *state_.snapshots;
  snap.generation = generation;
  snap.workload_pid = host_pid;
  snap.workload_start_time = process_start_time(host_pid);
  snap.layers = meta.layers;
  snap.head = meta.id;
  store_->save(state_.id, state_.to_json());
}

void Container::rollback(const std::string& snapshot_ref, const std::string& criu_path) {
  require_snapshots();
  auto status = this->status();
  if (status != oci::Status::running) fail("cannot roll back a container that is {}", oci::status_name(status));
  auto& snap = *state_.snapshots;
  auto store = delta::LayerStore::open(snap.store);
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  auto meta = tree.find(snapshot_ref);
  if (!meta) fail("snapshot {} of container {} does not exist", snapshot_ref, state_.id);
  const std::string old_generation = snap.generation;
  const pid_t old_pid = anchor_namespace_pid(snap.workload_pid);
  JobQueue jobs(store_->dir(state_.id));
  TemplatePool pool(store_->dir(state_.id));

  if (auto tpl = pool.find(meta->id); tpl && tpl->alive()) {
    auto leaf = leaf_cgroup(*cgroups(), generation_paths({}, tpl->generation).cgroup_leaf, true);
    const std::string procs = leaf->path("") + "/cgroup.procs";
    // One request: the template becomes current, the live generation dies, the template runs.
    anchor_request(anchor_socket(), format_activate({tpl->anchor_pid, old_pid, procs}));
    pool.forget(meta->id);
    switch_generation(tpl->generation, tpl->host_pid, *meta);
    jobs.enqueue({Job::Type::discard, "", old_generation});
    jobs.enqueue({Job::Type::template_restore, meta->id, ""});
    wake_helper(*store_, state_.id);
    return;
  }

  const std::string generation = allocate_generation();
  prepare_generation(store, *meta, generation);
  auto old_leaf = leaf_cgroup(*cgroups(), generation_paths({}, old_generation).cgroup_leaf, true);
  anchor_request(anchor_socket(), format_activate({0, old_pid, ""}));
  old_leaf->wait_empty(std::chrono::seconds(10));
  try {
    auto restored = restore_snapshot(tree, *meta, generation, false, criu_path);
    anchor_request(anchor_socket(), format_activate({restored.pid, 0, ""}));
    switch_generation(generation, restored.host_pid, *meta);
  } catch (...) {
    // Nothing runs any more and the snapshot could not come back: stop the container rather
    // than leave a supervisor waiting on an empty one.
    ::kill(state_.init_pid, SIGKILL);
    throw;
  }
  discard_generation(store, old_generation);
  if (meta->snapshot_class == SnapshotClass::template_ready) {
    jobs.enqueue({Job::Type::template_restore, meta->id, ""});
    wake_helper(*store_, state_.id);
  }
}

}  // namespace deltabox
