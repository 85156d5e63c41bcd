#pragma once
// Create-time preparation of a snapshot-enabled container: its layer store dir, generation 0's
// writable layer and leaf cgroups, and the anchor's launch description. Undone on destruction
// unless committed, so a failed create leaves nothing behind.
#include <filesystem>
#include <memory>
#include <string>

#include <oci/config.hpp>

#include "cgroups/manager.hpp"
#include "container/container_state.hpp"
#include "delta/store.hpp"
#include "process/launcher.hpp"

namespace deltabox {

inline constexpr const char* kSnapshotsAnnotation = "io.deltabox.snapshots";

// The annotation io.deltabox.snapshots=true, or --snapshots on create/run.
bool snapshots_requested(const oci::Config& config, bool flag);
// Why a config cannot be snapshotted (empty when it can): CRIU needs the tree to own its pid and
// mount namespaces, and the anchor design needs the pid namespace to be the container's own.
std::string snapshot_refusal(const oci::Config& config);

class SnapshotSetup {
 public:
  // base_layers: for a fork, the snapshot's layer chain (top first, bundle rootfs last); each
  // delta layer is copied (O(1) btrfs snapshot) so the fork outlives its source. Empty: a fresh
  // container over the bundle rootfs.
  SnapshotSetup(const std::filesystem::path& store_dir, const std::string& id, const std::filesystem::path& rootfs,
                cgroups::Manager& container_cgroup, const std::filesystem::path& state_dir,
                const std::vector<std::string>& base_layers = {});
  ~SnapshotSetup();
  SnapshotSetup(const SnapshotSetup&) = delete;
  SnapshotSetup& operator=(const SnapshotSetup&) = delete;

  AnchorSpec& anchor_spec() { return anchor_; }
  // After the launch: finds generation 0 beneath the anchor and records what later verbs need.
  SnapshotState describe(pid_t anchor_pid) const;
  // A fork's: no generation runs yet.
  SnapshotState describe_empty() const;
  void commit() { committed_ = true; }

 private:
  std::vector<std::string> copy_layers(const std::vector<std::string>& base_layers);
  delta::LayerStore store_;
  std::filesystem::path dir_;
  std::filesystem::path rootfs_;
  std::vector<std::string> lowers_;
  std::unique_ptr<cgroups::Manager> anchor_cgroup_;
  std::unique_ptr<cgroups::Manager> generation_cgroup_;
  UniqueFd anchor_cgroup_fd_;
  UniqueFd generation_cgroup_fd_;
  AnchorSpec anchor_;
  bool committed_ = false;
};

// The only child of the anchor right after create: generation 0's init.
pid_t first_child(pid_t pid);
// How CRIU names fds 0-2 of pid, which are the anchor's too: "pipe:[ino]" for pipes,
// "file[mnt_id:ino]" for files opened outside the container (a host /dev/null), "" for what a
// restore cannot reconnect (sockets, ttys).
std::vector<std::string> stdio_keys(pid_t pid);

}  // namespace deltabox
