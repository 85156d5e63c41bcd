// Work the helper does for a snapshot-enabled container (helper.hpp, jobs.hpp).
#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/snapshot_tree.hpp"
#include "delta/compact.hpp"
#include "delta/dedup.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

Container Container::adopt(const StateStore& store, const std::string& id, ContainerLock lock) {
  auto json = store.load(id);
  if (!json) throw Error("container does not exist");
  return Container(store, ContainerState::from_json(*json), std::move(lock));
}

void Container::run_job(const Job& job) {
  if (!state_.snapshots) return;
  auto store = delta::LayerStore::open(state_.snapshots->store);
  switch (job.type) {
    case Job::Type::dump:
      complete_snapshot(store, job.snapshot, state_.criu);
      // Done while we hold the lock: the next holder must not take it for interrupted.
      JobQueue(store_->dir(state_.id)).done_dump(job.snapshot);
      break;
    case Job::Type::template_restore:
      make_template(job.snapshot, state_.criu);
      break;
    case Job::Type::discard:
      discard_generation(store, job.generation);
      collect_removed_snapshots(store);
      break;
    case Job::Type::dedup:
      dedup_snapshot(store, job.snapshot);
      break;
    case Job::Type::compact:
      compact_snapshot(store, job.snapshot);
      break;
    case Job::Type::spill:
      break;  // two steps, the second under the lock: the helper runs them (helper.cpp)
  }
}

void Container::abandon_interrupted_dump(const Job& job) {
  auto store = delta::LayerStore::open(state_.snapshots->store);
  if (SnapshotTree(container_store_dir(store.root(), state_.id)).find(job.snapshot)) {
    workload_cgroups()->thaw();  // published before its owner died: it stays
    return;
  }
  log::warn("container {}: snapshot {} was interrupted and is discarded", state_.id, job.snapshot);
  abandon_snapshot(store, job.snapshot);
}

// Holding the lock, nobody is working on the container: a dump still journaled means the
// verb or helper that owned it died midway, and so does a staging dir or a rollback journal.
void Container::recover_interrupted_work() {
  JobQueue queue(store_->dir(state_.id));
  for (const auto& [file, job] : queue.pending()) {
    if (job.type != Job::Type::dump) continue;
    abandon_interrupted_dump(job);
    queue.done(file);
  }
  // A readdir, not a store open, on the common path where nothing was left.
  SnapshotTree tree(container_store_dir(state_.snapshots->store, state_.id));
  if (auto left = tree.abandoned(); !left.empty()) {
    auto store = delta::LayerStore::open(state_.snapshots->store);
    for (const auto& dir : left) {
      workload_cgroups()->thaw();
      store.remove(dir);
      image_cache().remove(dir.filename().string().substr(std::string_view(".staging-").size()));
    }
  }
  recover_interrupted_rollback();
}

void Container::copy_cached_images(const std::string& snapshot) {
  SnapshotTree tree(container_store_dir(state_.snapshots->store, state_.id));
  auto meta = tree.find(snapshot);
  if (!meta || !std::filesystem::is_symlink(tree.images(snapshot))) return;
  const auto parent = meta->parent.empty() ? std::filesystem::path() : tree.images(meta->parent);
  copy_images_to_store(tree.images(snapshot), tree.dir(snapshot) / "criu.spill", parent);
}

void Container::swap_cached_images(const std::string& snapshot) {
  SnapshotTree tree(container_store_dir(state_.snapshots->store, state_.id));
  if (!std::filesystem::is_symlink(tree.images(snapshot))) return;
  if (!tree.find(snapshot)) return;  // removed meanwhile: `snapshots rm` cleans up
  swap_in_spilled_images(tree.images(snapshot), tree.dir(snapshot) / "criu.spill");
  image_cache().remove(snapshot);
}

// Without soft-dirty tracking every dump holds all memory: share what did not change with the
// parent snapshot's images, so disk per snapshot is about the pages that did.
void Container::dedup_snapshot(const delta::LayerStore& store, const std::string& snapshot) {
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  auto meta = tree.find(snapshot);
  if (!meta || meta->parent.empty()) return;
  auto parent = tree.find(meta->parent);
  if (!parent) return;
  delta::dedup_against_parent(tree.images(meta->id), tree.images(parent->id));
}

// Every rollback stacks one more layer under what follows it; overlayfs allows 500 and lookups
// slow down with depth. A snapshot with a deep chain gets one flattened layer instead: the
// generations and templates made from it later stack on that.
void Container::compact_snapshot(const delta::LayerStore& store, const std::string& snapshot) {
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  auto meta = tree.find(snapshot);
  if (!meta || meta->layers.size() <= kCompactAbove + 1) return;
  std::vector<std::filesystem::path> deltas(meta->layers.begin(), meta->layers.end() - 1);
  const auto dest = tree.dir(meta->id) / "compact";
  if (std::filesystem::exists(dest)) store.remove(dest);
  delta::compact_layers(store, deltas, dest);
  meta->layers = {(dest / "upper").string(), meta->layers.back()};
  tree.update(*meta);
  collect_removed_snapshots(store);
}

}  // namespace deltabox
