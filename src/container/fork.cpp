// `fork`: new running containers from a snapshot (RL fan-out). Each is a container of its own —
// id, cgroup, namespaces, state, a copy of the snapshot's layer chain — whose first generation
// is the snapshot's process tree, restored. Its stdio is the caller's.
#include <fcntl.h>
#include <unistd.h>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/generation_criu.hpp"
#include "container/snapshot_tree.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

// The fork's cgroup: an explicit cgroupsPath of the source names the source's own cgroup, so the
// fork takes a sibling named after itself; without one each container gets its own already.
std::string fork_cgroups_path(const std::string& source_path, const std::string& new_id) {
  if (source_path.empty()) return source_path;
  auto slash = source_path.rfind('/');
  return (slash == std::string::npos ? std::string() : source_path.substr(0, slash + 1)) + new_id;
}

}  // namespace

pid_t Container::restore_fork(const ForkSource& fork) {
  UniqueFd images(::open(fork.images.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!images) throw_errno(fmt::format("open {}", fork.images.string()));
  oci::Config config = state_.parsed_config();
  auto cgroups = this->cgroups();
  auto restored = restore_generation({state_, config, *cgroups, state_.criu}, "0", images.get(),
                                     DumpExternals::from_json(fork.meta.externals), false);
  auto& snap = *state_.snapshots;
  snap.workload_pid = restored.host_pid;
  snap.workload_start_time = process_start_time(restored.host_pid);
  snap.head = "";
  return restored.pid;
}

void Container::fork(const std::string& snapshot_ref, const std::vector<std::string>& new_ids,
                     const CreateOptions& base) {
  require_snapshots();
  if (status() == oci::Status::stopped) fail("container {} is not running", state_.id);
  auto store = delta::LayerStore::open(state_.snapshots->store);
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  auto meta = tree.find(snapshot_ref);
  if (!meta) fail("snapshot {} of container {} does not exist", snapshot_ref, state_.id);
  ForkSource source{meta->layers, tree.images(meta->id), *meta};
  for (const auto& id : new_ids) {
    oci::Config config = state_.parsed_config();
    if (config.linux) config.linux->cgroups_path = fork_cgroups_path(config.linux->cgroups_path, id);
    CreateOptions options = base;
    options.id = id;
    options.bundle = state_.bundle;
    options.store = state_.snapshots->store;
    options.criu = state_.criu;
    build(*store_, options, std::move(config), &source);
  }
}

}  // namespace deltabox
