// `snapshot`: capture a running snapshot-enabled container — its filesystem changes and every
// process — at one instant, and let it run on.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/generation_criu.hpp"
#include "container/snapshot_classify.hpp"
#include "container/snapshot_tree.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

UniqueFd open_dir(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

// Thaws on every exit path: a failed snapshot must leave the container running as it was.
class FrozenWorkload {
 public:
  explicit FrozenWorkload(cgroups::Manager& cgroup) : cgroup_(cgroup) { cgroup_.freeze(); }
  ~FrozenWorkload() {
    try {
      cgroup_.thaw();
    } catch (const std::exception& e) {
      log::error("thaw after snapshot: {}", e.what());
    }
  }

 private:
  cgroups::Manager& cgroup_;
};

}  // namespace

void Container::require_snapshots() const {
  if (!state_.snapshots)
    fail("container {} was not created with snapshots enabled: create it with --snapshots or the annotation "
         "io.deltabox.snapshots=true",
         state_.id);
}

std::string Container::snapshot(const SnapshotOptions& options) {
  require_snapshots();
  auto status = this->status();
  if (status == oci::Status::stopped || status == oci::Status::created)
    fail("cannot snapshot a container that is {}", oci::status_name(status));
  auto& snap = *state_.snapshots;
  auto store = delta::LayerStore::open(snap.store);
  const auto dir = container_store_dir(store.root(), state_.id);
  SnapshotTree tree(dir);
  if (!options.name.empty() && tree.find(options.name)) fail("a snapshot named \"{}\" already exists", options.name);

  SnapshotMeta meta;
  meta.id = "s" + std::to_string(snap.next_id++);
  meta.name = options.name;
  meta.parent = snap.head;
  meta.generation = snap.generation;
  store_->save(state_.id, state_.to_json());  // the id is taken even if this snapshot fails

  auto classification = classify_generation(snap.workload_pid, workload_cgroups()->pids());
  meta.snapshot_class = classification.snapshot_class;
  meta.reason = classification.reason;

  const auto gen = generation_paths(dir, snap.generation);
  const auto staging = tree.staging(meta.id);
  std::filesystem::create_directories(staging / "criu");
  try {
    store.flush(gen.layer);
    oci::Config config = state_.parsed_config();
    auto cgroups = this->cgroups();
    auto workload = workload_cgroups();
    {
      FrozenWorkload frozen(*workload);
      store.snapshot(gen.layer, staging / "fs", true);
      UniqueFd images = open_dir(staging / "criu");
      meta.externals = dump_generation({state_, config, *cgroups, options.criu_path}, snap.generation, images.get()).to_json();
    }
    meta.created = rfc3339_nano_now();
    meta.layers.push_back((tree.dir(meta.id) / "fs" / "upper").string());
    meta.layers.insert(meta.layers.end(), snap.layers.begin(), snap.layers.end());
    tree.publish(meta);
  } catch (...) {
    store.remove(staging);
    throw;
  }
  snap.head = meta.id;
  store_->save(state_.id, state_.to_json());
  return meta.id;
}

}  // namespace deltabox
