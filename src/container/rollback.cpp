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
#include "util/file.hpp"
#include "util/log.hpp"
#include "criu/spawn.hpp"

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

void write_journal(const std::filesystem::path& file, const RollbackJournal& j) {
  nlohmann::json json = {{"snapshot", j.snapshot},         {"old_generation", j.old_generation},
                         {"old_pid", j.old_pid},           {"generation", j.generation},
                         {"template_pid", j.template_pid}, {"template_host_pid", j.template_host_pid}};
  write_file_atomic(file, json.dump(), 0600, Durability::survive_process_crash);
}

std::optional<RollbackJournal> read_journal(const std::filesystem::path& file) {
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error& e) {
    if (e.code() == ENOENT) return std::nullopt;
    throw;
  }
  auto json = nlohmann::json::parse(text);
  return RollbackJournal{json.at("snapshot").get<std::string>(), json.at("old_generation").get<std::string>(),
                         json.at("old_pid").get<pid_t>(),        json.at("generation").get<std::string>(),
                         json.at("template_pid").get<pid_t>(),   json.at("template_host_pid").get<pid_t>()};
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
  return restore_generation({state_, config, *cgroups, criu_path, lock_.dir_fd()}, generation, images.get(),
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

std::string Container::criu_binary(const std::string& requested) const {
  return requested.empty() ? state_.criu : requested;
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
  TemplatePool pool(store_->dir(state_.id));

  if (auto tpl = pool.find(meta->id); tpl && tpl->alive()) {
    RollbackJournal journal{meta->id, snap.generation, live_namespace_pid(), tpl->generation, tpl->anchor_pid,
                            tpl->host_pid};
    write_journal(journal_path(), journal);
    auto leaf = leaf_cgroup(*cgroups(), generation_paths({}, tpl->generation).cgroup_leaf, true);
    const std::string procs = leaf->path("") + "/cgroup.procs";
    // One request: the template becomes current, the live generation dies, the template runs.
    anchor_request(anchor_socket(), format_activate({tpl->anchor_pid, journal.old_pid, procs}));
    finish_rollback(journal, *meta, tpl->host_pid);
    return;
  }
  const std::string criu = criu_binary(criu_path);
  criu::open_executable(criu);  // a missing CRIU fails here, while the live generation still runs
  cold_rollback(store, tree, *meta, criu);
}

// The live generation goes first (so ports and names it holds are free), then CRIU restores
// the snapshot into a new generation.
void Container::cold_rollback(const delta::LayerStore& store, const SnapshotTree& tree, const SnapshotMeta& meta,
                              const std::string& criu_path) {
  const std::string old_generation = state_.snapshots->generation;
  const pid_t old_pid = live_namespace_pid();
  const std::string generation = allocate_generation();
  RollbackJournal journal{meta.id, old_generation, old_pid, generation, 0, 0};
  write_journal(journal_path(), journal);
  prepare_generation(store, meta, generation);
  auto old_leaf = leaf_cgroup(*cgroups(), generation_paths({}, old_generation).cgroup_leaf, true);
  anchor_request(anchor_socket(), format_activate({0, old_pid, ""}));
  old_leaf->kill_all(SIGKILL);  // what a killed rollback may have left of it
  old_leaf->wait_empty(std::chrono::seconds(10));
  try {
    auto restored = restore_snapshot(tree, meta, generation, false, criu_path);
    anchor_request(anchor_socket(), format_activate({restored.pid, 0, ""}));
    finish_rollback(journal, meta, restored.host_pid);
  } catch (...) {
    // Nothing runs any more and the snapshot could not come back: stop the container rather
    // than leave a supervisor waiting on an empty one.
    ::kill(state_.init_pid, SIGKILL);
    std::filesystem::remove(journal_path());
    throw;
  }
}

// The new generation is current in the anchor: record it, and leave the rest to the helper.
void Container::finish_rollback(const RollbackJournal& journal, const SnapshotMeta& meta, pid_t host_pid) {
  if (journal.template_pid) TemplatePool(store_->dir(state_.id)).forget(meta.id);
  switch_generation(journal.generation, host_pid, meta);
  // Queued before the journal goes: killed in between, recovery finishes again (a template
  // queued twice is made once).
  JobQueue jobs(store_->dir(state_.id));
  jobs.enqueue({Job::Type::discard, "", journal.old_generation});
  if (meta.snapshot_class == SnapshotClass::template_ready) jobs.enqueue({Job::Type::template_restore, meta.id, ""});
  std::filesystem::remove(journal_path());
  wake_helper(*store_, state_.id);
}

// A rollback killed midway left its journal. The anchor knows which generation is current:
// the old one (nothing happened: undo), the new one (finish recording it), or none (the old one
// is gone and the new one never ran: restore the snapshot now, as the rollback would have).
void Container::recover_interrupted_rollback() {
  std::optional<RollbackJournal> journal;
  try {
    journal = read_journal(journal_path());
  } catch (const std::exception& e) {
    log::warn("container {}: unreadable rollback journal dropped: {}", state_.id, e.what());
    std::filesystem::remove(journal_path());
    return;
  }
  if (!journal) return;
  const auto& j = *journal;
  log::warn("container {}: finishing a rollback to {} that was interrupted", state_.id, j.snapshot);
  auto store = delta::LayerStore::open(state_.snapshots->store);
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  auto meta = tree.find(j.snapshot);
  pid_t current = -1;
  try {
    current = std::stoi(anchor_request(anchor_socket(), "current"));
  } catch (const std::exception&) {
  }
  if (current < 0 || !meta) {  // the container is gone, or the snapshot is
    // With no generation left and nothing to restore, stop rather than run empty.
    if (current == 0) ::kill(state_.init_pid, SIGKILL);
    std::filesystem::remove(journal_path());
    return;
  }
  if (j.old_pid > 0 && current == j.old_pid) {
    if (!j.template_pid) discard_generation(store, j.generation);
    std::filesystem::remove(journal_path());
    return;
  }
  if (current > 0) {
    pid_t host = j.template_pid ? (current == j.template_pid ? j.template_host_pid : 0)
                                : criu::child_with_ns_pid(state_.init_pid, current);
    if (host > 0) {
      finish_rollback(j, *meta, host);
      return;
    }
  }
  if (j.template_pid) TemplatePool(store_->dir(state_.id)).forget(meta->id);
  discard_generation(store, j.generation);
  cold_rollback(store, tree, *meta, state_.criu);
}

pid_t Container::live_namespace_pid() const {
  const auto& snap = *state_.snapshots;
  if (!same_process_alive(snap.workload_pid, snap.workload_start_time)) return 0;
  return anchor_namespace_pid(snap.workload_pid);
}

std::filesystem::path Container::journal_path() const { return store_->dir(state_.id) / "rollback.json"; }

}  // namespace deltabox
