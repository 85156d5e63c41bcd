#pragma once
// btrfs subvolume primitives, all by ioctl: they sit on the snapshot hot path, where exec'ing
// btrfs-progs would cost more than the operation itself.
#include <filesystem>

namespace deltabox::delta::btrfs {

// statfs(path) reports BTRFS_SUPER_MAGIC.
bool is_btrfs(const std::filesystem::path& path);
// path is the root directory of a subvolume (inode 256 on a btrfs filesystem).
bool is_subvolume(const std::filesystem::path& path);

// New empty subvolume at path (its parent must exist, path must not).
void create_subvolume(const std::filesystem::path& path);
// Snapshot of the subvolume rooted at source, created at dest (dest must not exist). O(1): the
// snapshot shares every extent and tree block with its source until either is modified.
void snapshot_subvolume(const std::filesystem::path& source, const std::filesystem::path& dest, bool readonly);
// Deletes the subvolume rooted at path, read-only or not; the space is reclaimed in the background
// by the btrfs cleaner. Nested subvolumes are deleted first.
void destroy_subvolume(const std::filesystem::path& path);
void set_readonly(const std::filesystem::path& subvolume, bool readonly);
bool is_readonly(const std::filesystem::path& subvolume);

}  // namespace deltabox::delta::btrfs
