#pragma once
// The snapshots of one container, as stored under <store>/containers/<id>/snapshots/<snap>/:
//   fs/          read-only subvolume: the generation's writable layer at snapshot time;
//                fs/upper is the overlay lower this snapshot adds
//   criu/        CRIU images of the generation's process tree
//   meta.json    this record; written last (write, fsync, rename): a snapshot without it does
//                not exist, so a crash midway never leaves a half-visible snapshot
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deltabox {

// How a snapshot can come back.
enum class SnapshotClass {
  template_ready,  // restorable ahead of time next to the live generation (warm rollback)
  cold_only,       // holds listening/connected sockets or abstract unix sockets: a copy restored
                   // beside the live generation would collide with it in the shared netns
};
const char* snapshot_class_name(SnapshotClass c);

struct SnapshotMeta {
  std::string id;
  std::string name;
  std::string parent;  // "" for a root snapshot
  std::string created;
  std::string generation;  // the generation it was taken from
  // Overlay lowers of a generation restored from this snapshot, top first (this snapshot's own
  // layer first, the bundle rootfs last).
  std::vector<std::string> layers;
  SnapshotClass snapshot_class = SnapshotClass::template_ready;
  std::string reason;      // why cold_only
  uint64_t fs_bytes = 0;     // bytes of the layer no other snapshot shares
  uint64_t image_bytes = 0;  // bytes of the process images no other snapshot shares
  nlohmann::json externals;  // what the dump declared external (generation_criu.hpp)
  // Removed by the user, but its layer is still a lower of something that lives on: hidden,
  // images gone, kept until nothing needs the layer.
  bool removed = false;

  nlohmann::json to_json() const;
  static SnapshotMeta from_json(const nlohmann::json& json);
};

class SnapshotTree {
 public:
  explicit SnapshotTree(std::filesystem::path container_store_dir);

  std::filesystem::path dir(const std::string& snap) const;
  std::filesystem::path layer(const std::string& snap) const { return dir(snap) / "fs"; }
  std::filesystem::path images(const std::string& snap) const { return dir(snap) / "criu"; }
  // Where a snapshot is assembled before it becomes visible.
  std::filesystem::path staging(const std::string& snap) const;

  std::vector<SnapshotMeta> list() const;  // visible snapshots, oldest first
  std::vector<SnapshotMeta> removed() const;  // removed ones whose layer is kept
  std::optional<SnapshotMeta> find(const std::string& id_or_name) const;
  // Makes a staged snapshot visible: meta.json written and fsynced, then the staging dir renamed.
  void publish(const SnapshotMeta& meta) const;
  // Rewrites a published snapshot's meta.json atomically.
  void update(const SnapshotMeta& meta) const;
  // The commit point of `snapshots rm`: from here on the snapshot is not listed nor found.
  void mark_removed(const std::string& snap) const;
  // Staging dirs of snapshots that never completed (a crash, a kill): safe to delete.
  std::vector<std::filesystem::path> abandoned() const;

 private:
  std::vector<SnapshotMeta> all() const;
  std::filesystem::path root_;
};

}  // namespace deltabox
