// `snapshots`: the snapshot tree of a container, and removing snapshots (keeping what
// descendants still need).
#include <algorithm>
#include <set>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/snapshot_tree.hpp"
#include "container/templates.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

// Layers something still running or restorable stacks on: the live generation's, the
// templates', and every visible snapshot's.
std::set<std::string> layers_in_use(const SnapshotState& state, const SnapshotTree& tree, const TemplatePool& pool) {
  std::set<std::string> used(state.layers.begin(), state.layers.end());
  for (const auto& m : tree.list()) used.insert(m.layers.begin(), m.layers.end());
  for (const auto& t : pool.all()) used.insert(t.layers.begin(), t.layers.end());
  return used;
}

}  // namespace

std::vector<SnapshotInfo> Container::list_snapshots() const {
  require_snapshots();
  auto store = delta::LayerStore::open(state_.snapshots->store);
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  TemplatePool pool(store_->dir(state_.id));
  std::vector<SnapshotInfo> out;
  for (auto& meta : tree.list()) {
    SnapshotInfo info;
    auto tpl = pool.find(meta.id);
    info.template_ready = tpl && tpl->alive();
    info.head = meta.id == state_.snapshots->head;
    info.fs_bytes = store.exclusive_bytes(tree.layer(meta.id));
    const auto images = tree.images(meta.id);
    info.image_bytes = std::filesystem::is_symlink(images) ? directory_bytes(images) : store.exclusive_bytes(images);
    info.meta = std::move(meta);
    out.push_back(std::move(info));
  }
  return out;
}

void Container::remove_snapshots(const std::vector<std::string>& refs) {
  require_snapshots();
  auto store = delta::LayerStore::open(state_.snapshots->store);
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  TemplatePool pool(store_->dir(state_.id));
  std::vector<SnapshotMeta> doomed;
  for (const auto& ref : refs) {
    auto meta = tree.find(ref);
    if (!meta) fail("snapshot {} of container {} does not exist", ref, state_.id);
    doomed.push_back(*meta);
  }
  for (auto& meta : doomed) {
    if (auto tpl = pool.find(meta.id)) drop_template(store, *tpl);
    tree.mark_removed(meta.id);
    // Images first: on a full store that is what gives room to write the record.
    store.remove(tree.images(meta.id));
    store.remove(tree.dir(meta.id) / "criu.spill");
    image_cache().remove(meta.id);
    meta.removed = true;
    try {
      tree.update(meta);
    } catch (const Error& e) {
      log::debug("snapshot {}: record its removal: {} (it stays removed)", meta.id, e.what());
    }
  }
  collect_removed_snapshots(store);
}

// Every removed snapshot whose layer nothing stacks on any more goes for good.
void Container::collect_removed_snapshots(const delta::LayerStore& store) {
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  const auto used = layers_in_use(*state_.snapshots, tree, TemplatePool(store_->dir(state_.id)));
  for (const auto& meta : tree.removed())
    if (!used.count((tree.dir(meta.id) / "fs" / "upper").string())) store.remove(tree.dir(meta.id));
}

}  // namespace deltabox
