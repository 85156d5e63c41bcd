#pragma once
// A container: load it by id (or create it), apply one verb, and the state dir reflects it.
// One file per verb, like youki's libcontainer: create.cpp, start.cpp, kill.cpp, ...
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <oci/config.hpp>
#include <oci/state.hpp>

#include "cgroups/manager.hpp"
#include "cgroups/oom.hpp"
#include "container/container_state.hpp"
#include "container/image_cache.hpp"
#include "container/jobs.hpp"
#include "container/snapshot_tree.hpp"
#include "container/templates.hpp"
#include "criu/options.hpp"
#include "delta/store.hpp"
#include "state/store.hpp"

namespace deltabox {

struct CreateOptions {
  std::string id;
  std::filesystem::path bundle;   // absolute
  std::string console_socket;     // path of the caller's AF_UNIX socket, "" for none
  int console_socket_fd = -1;     // or an already connected socket (foreground run)
  std::string pid_file;           // absolute, "" for none
  bool no_pivot = false;
  bool no_new_keyring = false;
  int preserve_fds = 0;
  bool systemd_cgroup = false;
  bool rootless = false;
  bool snapshots = false;            // --snapshots (or the io.deltabox.snapshots annotation)
  std::filesystem::path store;       // the layer store (DeltaFS), for snapshot-enabled containers
  std::string criu = "criu";         // the criu binary (--criu)
};

struct ExecOptions {
  oci::Process process;           // complete: the CLI merged config, process.json and flags
  std::string console_socket;
  int console_socket_fd = -1;
  std::string pid_file;
  int preserve_fds = 0;
  bool ignore_paused = false;
  std::string sub_cgroup;          // --cgroup: an existing cgroup below the container's
};

// What a fork starts from: a snapshot of another container.
struct ForkSource {
  std::vector<std::string> layers;  // the snapshot's lowers, top first, bundle rootfs last
  std::filesystem::path images;     // its CRIU images
  SnapshotMeta meta;
  pid_t anchor = 0;                 // the source container's anchor (its CRIU kernel-feature cache)
};

// Layer chains deeper than this (delta layers over the bundle rootfs) are compacted.
inline constexpr size_t kCompactAbove = 16;

// `checkpoint` (checkpoint.cpp): runc's flags.
struct CheckpointOptions {
  std::filesystem::path image_path;  // absolute; made (0600, as runc) when missing
  std::filesystem::path work_path;   // "": CRIU's logs and stats go into the image dir
  std::string parent_path;           // relative to image_path: a pre-dump to build on
  bool leave_running = false;
  bool tcp_established = false;
  bool ext_unix_sk = false;
  bool shell_job = false;
  bool file_locks = false;
  bool pre_dump = false;
  bool auto_dedup = false;
  bool lazy_pages = false;
  std::string page_server;            // "ADDRESS:PORT"
  // The raw flag values; checked in runc's order, after the container's state.
  std::string manage_cgroups_mode;    // "", soft, full, strict, ignore
  std::vector<std::string> empty_ns;  // only "network"; runc always leaves the netns empty
  std::string criu_path;
};

// `restore` (restore.cpp): create's options plus runc's CRIU flags.
struct RestoreOptions {
  CreateOptions create;               // id, bundle, console socket, pid file, cgroup driver
  bool detach = false;
  std::filesystem::path image_path;
  std::filesystem::path work_path;
  bool tcp_established = false;
  bool ext_unix_sk = false;
  bool shell_job = false;
  bool file_locks = false;
  bool auto_dedup = false;
  std::string manage_cgroups_mode;
  std::vector<std::string> empty_ns;
  std::string lsm_profile;
  std::string lsm_mount_context;
  std::string criu_path;
};

struct SnapshotOptions {
  std::string name;
  bool async = false;
  std::string criu_path;
};

// A rollback in progress, journaled in the state dir (rollback.json) before its first
// destructive step, so that a rollback killed midway is finished or undone (rollback.cpp).
struct RollbackJournal {
  std::string snapshot;
  std::string old_generation;
  pid_t old_pid = 0;           // the live generation's init, in the anchor's pid namespace
  std::string generation;      // the generation that replaces it
  pid_t template_pid = 0;      // warm: the template's init in the anchor's namespace; 0: cold
  pid_t template_host_pid = 0;
};

struct SnapshotInfo {
  SnapshotMeta meta;
  bool template_ready = false;
  bool head = false;  // the snapshot the running generation descends from
  uint64_t fs_bytes = 0;
  uint64_t image_bytes = 0;
};

class Container {
 public:
  // Builds the container and leaves its init waiting for `start`, as a child of this process.
  static Container create(const StateStore& store, const CreateOptions& options);
  // Takes the container's lock; throws "container does not exist".
  static Container load(const StateStore& store, const std::string& id);
  // Reads the state without the lock (state, list, ps: never wait behind a long verb).
  static Container peek(const StateStore& store, const std::string& id);

  Container(Container&&) = default;
  Container& operator=(Container&&) = default;

  const std::string& id() const { return state_.id; }
  const ContainerState& state() const { return state_; }
  oci::Status status() const;
  pid_t init_pid() const;  // 0 when stopped

  void start();
  void pause();
  void resume();
  // Merges changes into the current resources, writes them, and records them in the state.
  void update(const oci::Resources& changes);
  nlohmann::ordered_json stats() const;
  std::unique_ptr<cgroups::OomEvents> oom_events() const;
  void kill(int signal, bool all);
  void destroy(bool force);
  std::vector<pid_t> processes() const;
  // Starts a process in the container; returns its pid (our child) once it has exec'd.
  pid_t exec(const ExecOptions& options);

  // Dumps the container's processes with CRIU; destroys it unless leave_running or pre_dump.
  void checkpoint(const CheckpointOptions& options);
  // A new container whose init is the process tree restored from a checkpoint's images.
  static Container restore(const StateStore& store, const RestoreOptions& options);

  // Snapshot-enabled containers (snapshot.cpp, rollback.cpp, ...).
  std::string snapshot(const SnapshotOptions& options);
  void rollback(const std::string& snapshot, const std::string& criu_path);
  // New running containers from one of our snapshots, each with its own id, cgroup, layers and
  // namespaces; `base` carries what create would take from the CLI (store, root, criu).
  void fork(const std::string& snapshot, const std::vector<std::string>& new_ids, const CreateOptions& base);
  std::vector<SnapshotInfo> list_snapshots() const;
  void remove_snapshots(const std::vector<std::string>& snapshots);

  // The helper's side (background.cpp): a container whose lock it already holds (handed over
  // by an async snapshot, or none for recovery), and one job of its queue.
  static Container adopt(const StateStore& store, const std::string& id, ContainerLock lock);
  // Called with the lock held: undoes or finishes what a killed verb or helper left (jobs.hpp).
  void recover_interrupted_work();
  void run_job(const Job& job);
  // A spill job (image_cache.hpp) in two steps: the copy needs no lock, the swap does.
  void copy_cached_images(const std::string& snapshot);
  void swap_cached_images(const std::string& snapshot);
  void abandon_interrupted_dump(const Job& job);

  void unlock() { lock_.release(); }

 private:
  Container(const StateStore& store, ContainerState state, ContainerLock lock);
  static Container build(const StateStore& store, const CreateOptions& options, oci::Config config,
                         const ForkSource* fork);
  // A fork's first generation, restored from the source snapshot; returns its pid in the
  // anchor's pid namespace.
  pid_t restore_fork(const ForkSource& fork);
  std::unique_ptr<cgroups::Manager> cgroups() const;
  // Where the user's processes run: the container's cgroup, or the current generation's leaf.
  std::unique_ptr<cgroups::Manager> workload_cgroups() const;
  // The process whose namespaces exec joins: the init, or the current generation's init.
  pid_t workload_pid() const;
  uint64_t workload_start_time() const;
  std::filesystem::path start_fifo() const;
  void remove_everything(cgroups::Manager& cgroups);
  void require_snapshots() const;
  // The criu binary a snapshot verb uses: the one named on its command line, else create's.
  std::string criu_binary(const std::string& requested) const;
  // A rollback killed midway (rollback.json) is finished or undone by the next lock holder.
  void recover_interrupted_rollback();
  std::filesystem::path journal_path() const;
  // The live generation's init in the anchor's pid namespace; 0 when it is gone.
  pid_t live_namespace_pid() const;
  void finish_rollback(const RollbackJournal& journal, const SnapshotMeta& meta, pid_t host_pid);
  void cold_rollback(const delta::LayerStore& store, const SnapshotTree& tree, const SnapshotMeta& meta,
                     const std::string& criu_path);
  std::filesystem::path anchor_socket() const;
  SnapshotMeta begin_snapshot(const delta::LayerStore& store, const std::string& name);
  void complete_snapshot(const delta::LayerStore& store, const std::string& snapshot, const std::string& criu_path);
  void abandon_snapshot(const delta::LayerStore& store, const std::string& snapshot);
  void stage_images_dir(const std::filesystem::path& staging, const std::string& snapshot, uint64_t estimate);
  ImageCache image_cache() const;
  std::string allocate_generation();
  // Layer, mount point, leaf cgroup and overlay (in the anchor) of a generation from a snapshot.
  void prepare_generation(const delta::LayerStore& store, const SnapshotMeta& meta, const std::string& generation);
  criu::RestoreResult restore_snapshot(const SnapshotTree& tree, const SnapshotMeta& meta, const std::string& generation,
                                       bool leave_stopped, const std::string& criu_path);
  void switch_generation(const std::string& generation, pid_t host_pid, const SnapshotMeta& meta);
  void discard_generation(const delta::LayerStore& store, const std::string& generation);
  TemplateBudget template_budget() const;
  void make_template(const std::string& snapshot, const std::string& criu_path);
  void drop_template(const delta::LayerStore& store, const TemplateRecord& record);
  void dedup_snapshot(const delta::LayerStore& store, const std::string& snapshot);
  void compact_snapshot(const delta::LayerStore& store, const std::string& snapshot);
  void collect_removed_snapshots(const delta::LayerStore& store);

  const StateStore* store_;
  ContainerState state_;
  ContainerLock lock_;
};

// The JSON runc prints for `state` and in `list --format json` (its containerState).
nlohmann::ordered_json runc_state_json(const Container& container, const std::string& owner);

// Writes a pid file the way runc does: atomically, no trailing newline.
void write_pid_file(const std::string& path, pid_t pid);

}  // namespace deltabox
