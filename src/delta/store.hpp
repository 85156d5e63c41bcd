#pragma once
// DeltaFS layer store: where writable container layers and their immutable snapshots live.
//
// Layout of one layer (decided here, relied on by overlay.hpp and compact.hpp):
//   <layer>/          the unit of snapshot and deletion: a btrfs subvolume (a plain dir on the
//                     reflink/copy backends)
//   <layer>/upper/    the overlay upper; once the layer is snapshotted, `<snapshot>/upper` is the
//                     path given to overlayfs as a lower
//   <layer>/work/     the overlay work dir. It must sit in the same subvolume as upper/:
//                     whiteouts are renames from work/ into upper/ and btrfs refuses renames
//                     across subvolumes (EXDEV).
// A snapshot of a writable layer captures upper/ and work/ together in O(1); the work/ copy is
// empty but for overlayfs' own scratch dir and is never used.
#include <cstdint>
#include <filesystem>

namespace deltabox::delta {

enum class Backend {
  btrfs,    // subvolume snapshots: O(1) snapshots, reflinked dedup and compaction
  reflink,  // XFS or another FICLONE-capable fs: tree copies with shared extents
  copy,     // anything else: plain copies (slow; warned once)
};

const char* backend_name(Backend backend);

inline constexpr const char* kDefaultStoreDir = "/var/lib/deltabox";

struct StoreOptions {
  // Apparent size of the sparse image file; it only takes the space btrfs actually uses.
  uint64_t image_size = uint64_t{64} << 30;
  // When the store dir is not on btrfs: make and mount a loop-backed btrfs image there.
  bool create_loop_image = true;
  // false: the image is mounted with nobarrier. Every snapshot is a btrfs transaction commit,
  // and with barriers each commit flushes the host disk's cache through the loop device and the
  // image file (measured: snapshot ~8-12 ms with barriers, ~0.3 ms without). Without them a
  // host crash or power loss can corrupt the whole store image, not just recent snapshots.
  // Only applies when this open mounts the image; an already mounted store keeps its options.
  bool barriers = true;
};

class LayerStore {
 public:
  // Opens the store at dir, creating it if needed. If dir is not on btrfs and
  // options.create_loop_image: creates `<dir>.img` (a sparse file next to dir, never inside the
  // mountpoint), mkfs.btrfs's it once, binds an autoclear loop device and mounts it at dir in the
  // caller's mount namespace. Concurrent CLI processes serialise on flock(`<dir>.lock`); an
  // already mounted btrfs at dir is just used. A dir that is not btrfs but already holds files
  // is a store of a fallback backend and is never mounted over. When btrfs is impossible, falls
  // back to reflink or copy with one warning.
  static LayerStore open(const std::filesystem::path& dir = kDefaultStoreDir, const StoreOptions& options = {});
  // A store over dir with a known backend (no probing, no mounting).
  LayerStore(std::filesystem::path root, Backend backend) : root_(std::move(root)), backend_(backend) {}

  static std::filesystem::path image_path(const std::filesystem::path& dir);
  static std::filesystem::path lock_path(const std::filesystem::path& dir);

  Backend backend() const { return backend_; }
  const std::filesystem::path& root() const { return root_; }

  // A writable layer at path (which must not exist; missing parents are made as plain dirs):
  // a subvolume (plain dir off btrfs) holding empty upper/ and work/. The overlay's root dir
  // takes its attributes from upper/, so upper/ copies owner, mode and times from root_like:
  // pass the bundle rootfs for a new container and the snapshot's layer (`<snap>/upper`) on
  // rollback, so a chmod/chown of "/" inside the container survives the rollback. Without
  // root_like, upper/ is 0755 and owned by the caller.
  void create_writable(const std::filesystem::path& path, const std::filesystem::path& root_like = {}) const;
  // dest becomes an immutable copy of the layer (or snapshot) at source. btrfs: one
  // BTRFS_IOC_SNAP_CREATE_V2 (read-only when readonly). Other backends copy the tree keeping
  // everything overlayfs needs (copy.hpp) and ignore readonly: nothing there can enforce it.
  void snapshot(const std::filesystem::path& source, const std::filesystem::path& dest, bool readonly = true) const;
  // Deletes a layer, snapshot or dir of layers; read-only snapshots included. Missing: no-op.
  // The caller must first unmount every overlay stacking it: btrfs deletes a subvolume that an
  // overlay still uses as a lower without complaint, pulling the files from under the container.
  void remove(const std::filesystem::path& path) const;
  // syncfs on the layer's filesystem: called before freezing so that the snapshot taken while
  // frozen finds little dirty data to flush.
  void flush(const std::filesystem::path& path) const;
  // Data bytes under path that nothing else shares (FIEMAP extents without FIEMAP_EXTENT_SHARED,
  // inline extents included, each inode once; allocated blocks where FIEMAP is unsupported).
  // Metadata is not counted. Flushes delayed allocation of the files it measures.
  uint64_t exclusive_bytes(const std::filesystem::path& path) const;

 private:
  std::filesystem::path root_;
  Backend backend_;
};

}  // namespace deltabox::delta
