#pragma once
// The store's loop-backed btrfs image: the cold path that makes snapshots O(1) on hosts whose
// /var/lib is ext4 or XFS.
#include <cstdint>
#include <filesystem>

namespace deltabox::delta::image {

// Writes a sparse file of `size` bytes holding a fresh btrfs (mkfs.btrfs, the only helper deltabox
// execs, and only here). Built under a temporary name and renamed into place, so a crash never
// leaves a half-made image at `image`.
void create_btrfs(const std::filesystem::path& image, uint64_t size);

// Mounts the btrfs inside `image` at `dir` in the caller's mount namespace, reusing a loop device
// already bound to the image (mounted in another namespace) instead of binding a second one to
// the same filesystem.
// barriers=false mounts with nobarrier (see StoreOptions::barriers).
void mount_btrfs(const std::filesystem::path& image, const std::filesystem::path& dir, bool barriers = true);

}  // namespace deltabox::delta::image
