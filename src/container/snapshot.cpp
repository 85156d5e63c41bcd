// `snapshot`: capture a running snapshot-enabled container — its filesystem changes and every
// process — at one instant, and let it run on.
//
// The capture has two halves. Begin: flush the upper, freeze the generation, take the btrfs
// snapshot of its layer (the filesystem is captured). Complete: CRIU dumps the frozen tree,
// the generation thaws, and the snapshot is published (meta.json written last: until then it
// does not exist). With --async the CLI returns between the halves and the container's helper
// completes it, holding the container's lock (handed over) so other verbs wait.
#include <fcntl.h>
#include <unistd.h>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/generation_criu.hpp"
#include "container/criu_cache.hpp"
#include "container/helper.hpp"
#include "container/image_cache.hpp"
#include "container/jobs.hpp"
#include "container/snapshot_classify.hpp"
#include "container/snapshot_tree.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

constexpr const char* kPendingMeta = "pending.json";

UniqueFd open_dir(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

}  // namespace

void Container::require_snapshots() const {
  if (!state_.snapshots)
    fail("container {} was not created with snapshots enabled: create it with --snapshots or the annotation "
         "io.deltabox.snapshots=true",
         state_.id);
}

SnapshotMeta Container::begin_snapshot(const delta::LayerStore& store, const std::string& name) {
  auto& snap = *state_.snapshots;
  const auto dir = container_store_dir(store.root(), state_.id);
  SnapshotTree tree(dir);
  if (!name.empty()) {
    // Names share rollback's argument with ids (s1, s2, ...): keep the two apart.
    if (name.size() > 1 && name[0] == 's' && name.find_first_not_of("0123456789", 1) == std::string::npos)
      fail("snapshot name \"{}\" looks like a snapshot id", name);
    if (tree.find(name)) fail("a snapshot named \"{}\" already exists", name);
  }

  SnapshotMeta meta;
  meta.id = "s" + std::to_string(snap.next_id++);
  meta.name = name;
  meta.parent = snap.head;
  meta.generation = snap.generation;
  store_->save(state_.id, state_.to_json());  // the id is taken even if this snapshot fails
  const auto pids = workload_cgroups()->pids();
  auto classification = classify_generation(snap.workload_pid, pids);
  meta.snapshot_class = classification.snapshot_class;
  meta.reason = classification.reason;
  meta.layers.push_back((tree.dir(meta.id) / "fs" / "upper").string());
  meta.layers.insert(meta.layers.end(), snap.layers.begin(), snap.layers.end());

  const auto gen = generation_paths(dir, snap.generation);
  const auto staging = tree.staging(meta.id);
  // Journaled before anything exists: whoever takes the lock after a crash or kill from here
  // on finds the job, thaws the container and removes the staging dir.
  JobQueue(store_->dir(state_.id)).enqueue({Job::Type::dump, meta.id, meta.generation});
  stage_images_dir(staging, meta.id, resident_bytes(pids));
  auto workload = workload_cgroups();
  try {
    // Whatever is dirty now is written before the freeze, not inside the frozen window.
    store.flush(gen.layer);
    workload->freeze();
    store.snapshot(gen.layer, staging / "fs", true);
    write_file_atomic(staging / kPendingMeta, meta.to_json().dump(), 0600, Durability::survive_process_crash);
  } catch (...) {
    abandon_snapshot(store, meta.id);
    throw;
  }
  return meta;
}

// CRIU writes into <staging>/criu: a dir in the store, or a symlink to the image cache.
void Container::stage_images_dir(const std::filesystem::path& staging, const std::string& snapshot, uint64_t estimate) {
  std::filesystem::create_directories(staging);
  const auto cached = image_cache().reserve(snapshot, estimate);
  if (cached.empty())
    std::filesystem::create_directory(staging / "criu");
  else
    std::filesystem::create_directory_symlink(cached, staging / "criu");
}

ImageCache Container::image_cache() const {
  return ImageCache(store_->dir(state_.id), ImageCache::cap_from(state_.annotations()));
}

void Container::complete_snapshot(const delta::LayerStore& store, const std::string& snapshot,
                                  const std::string& criu_path) {
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  const auto staging = tree.staging(snapshot);
  try {
    auto meta = SnapshotMeta::from_json(nlohmann::json::parse(read_file(staging / kPendingMeta)));
    oci::Config config = state_.parsed_config();
    auto cgroups = this->cgroups();
    {
      UniqueFd images = open_dir(staging / "criu");
      meta.externals = dump_generation({state_, config, *cgroups, criu_path, lock_.dir_fd()}, meta.generation, images.get()).to_json();
    }
    workload_cgroups()->thaw();
    keep_criu_cache(state_.snapshots->store, state_.init_pid);
    meta.created = rfc3339_nano_now();
    std::filesystem::remove(staging / kPendingMeta);
    tree.publish(meta);
    state_.snapshots->head = meta.id;
    store_->save(state_.id, state_.to_json());
    // The template first (a rollback may come soon); then the images go to the store.
    JobQueue jobs(store_->dir(state_.id));
    if (meta.snapshot_class == SnapshotClass::template_ready) jobs.enqueue({Job::Type::template_restore, meta.id, ""});
    if (std::filesystem::is_symlink(tree.images(meta.id)))
      jobs.enqueue({Job::Type::spill, meta.id, ""});
    else if (!meta.parent.empty())
      jobs.enqueue({Job::Type::dedup, meta.id, ""});
    if (meta.layers.size() > kCompactAbove + 1) jobs.enqueue({Job::Type::compact, meta.id, ""});
  } catch (...) {
    abandon_snapshot(store, snapshot);
    throw;
  }
}

// A snapshot that did not complete: nothing of it stays, and the container runs on.
void Container::abandon_snapshot(const delta::LayerStore& store, const std::string& snapshot) {
  try {
    workload_cgroups()->thaw();
  } catch (const std::exception& e) {
    log::error("thaw {} after a failed snapshot: {}", state_.id, e.what());
  }
  try {
    store.remove(SnapshotTree(container_store_dir(store.root(), state_.id)).staging(snapshot));
  } catch (const std::exception& e) {
    log::warn("remove the remains of snapshot {}: {}", snapshot, e.what());
  }
  image_cache().remove(snapshot);
}

std::string Container::snapshot(const SnapshotOptions& options) {
  require_snapshots();
  auto status = this->status();
  if (status != oci::Status::running) fail("cannot snapshot a container that is {}", oci::status_name(status));
  auto store = delta::LayerStore::open(state_.snapshots->store);
  SnapshotMeta meta = begin_snapshot(store, options.name);
  if (options.async) {
    // The helper inherits our lock and the journaled dump: every other verb waits until the
    // dump is done.
    wake_helper(*store_, state_.id, lock_.dir_fd());
    lock_.release();
    return meta.id;
  }
  JobQueue jobs(store_->dir(state_.id));
  try {
    complete_snapshot(store, meta.id, criu_binary(options.criu_path));
  } catch (...) {
    jobs.done_dump(meta.id);
    throw;
  }
  jobs.done_dump(meta.id);
  wake_helper(*store_, state_.id);
  return meta.id;
}

}  // namespace deltabox
