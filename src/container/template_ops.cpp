// Making and dropping templates (helper jobs; see templates.hpp).
#include <sys/stat.h>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/snapshot_tree.hpp"
#include "container/templates.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

uint64_t images_size(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

uint64_t annotation_number(const std::map<std::string, std::string>& annotations, const char* key, uint64_t fallback) {
  auto it = annotations.find(key);
  if (it == annotations.end()) return fallback;
  try {
    return std::stoull(it->second);
  } catch (const std::exception&) {
    log::warn("ignoring annotation {}={}: not a number", key, it->second);
    return fallback;
  }
}

}  // namespace

TemplateBudget Container::template_budget() const {
  auto annotations = state_.annotations();
  TemplateBudget budget;
  budget.count = annotation_number(annotations, "io.deltabox.templates", budget.count);
  budget.bytes = annotation_number(annotations, "io.deltabox.template-memory", budget.bytes);
  return budget;
}

void Container::drop_template(const delta::LayerStore& store, const TemplateRecord& record) {
  TemplatePool(store_->dir(state_.id)).forget(record.snapshot);
  discard_generation(store, record.generation);
}

void Container::make_template(const std::string& snapshot, const std::string& criu_path) {
  if (!state_.snapshots || status() != oci::Status::running) return;
  auto store = delta::LayerStore::open(state_.snapshots->store);
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  auto meta = tree.find(snapshot);
  if (!meta || meta->snapshot_class != SnapshotClass::template_ready) return;
  TemplatePool pool(store_->dir(state_.id));
  if (auto existing = pool.find(meta->id)) {
    if (existing->alive()) return;
    drop_template(store, *existing);
  }
  const auto budget = template_budget();
  const uint64_t bytes = images_size(tree.images(meta->id));
  if (budget.count == 0 || bytes > budget.bytes) return;
  // Room first: the oldest templates go.
  auto templates = pool.all();
  uint64_t used = 0;
  for (const auto& t : templates) used += t.image_bytes;
  for (size_t i = 0; i < templates.size() && (templates.size() - i >= budget.count || used + bytes > budget.bytes); ++i) {
    used -= templates[i].image_bytes;
    drop_template(store, templates[i]);
  }

  const std::string generation = allocate_generation();
  prepare_generation(store, *meta, generation);
  // CRIU's restore takes tens of ms: verbs need not wait for it. A rollback meanwhile finds no
  // record yet and goes cold; a delete kills the restore with the container's cgroup.
  lock_.release();
  try {
    auto restored = restore_snapshot(tree, *meta, generation, true, criu_path);
    pool.save({meta->id, generation, restored.pid, restored.host_pid, process_start_time(restored.host_pid), bytes,
               meta->layers});
  } catch (...) {
    discard_generation(store, generation);
    throw;
  }
}

}  // namespace deltabox
