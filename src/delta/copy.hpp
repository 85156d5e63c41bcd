#pragma once
// Copying overlay layers file by file, for filesystems without subvolume snapshots and for
// compaction. Everything overlayfs gives meaning to survives: trusted.overlay.* xattrs (opaque
// dirs), whiteouts (char 0:0 devices), modes, owners, times, symlinks, devices, fifos, sockets and
// hardlinks within one copy.
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "util/fd.hpp"

namespace deltabox::delta {

enum class DataCopy {
  reflink,  // FICLONE (shares extents; falls back to a copy for a file the fs refuses to clone)
  copy,     // copy_file_range, falling back to read/write
};

inline constexpr const char* kOpaqueXattr = "trusted.overlay.opaque";

// overlayfs' whiteout: a character device 0:0.
bool is_whiteout(const struct stat& st);

// Entries of an open directory (without "." and ".."), sorted for deterministic walks.
std::vector<std::string> list_dir(int dirfd);
UniqueFd open_dir_at(int dirfd, const std::string& name);

// Extended attributes of dirfd/name (not following a symlink), name -> value.
using Xattrs = std::map<std::string, std::string>;
Xattrs read_xattrs_at(int dirfd, const std::string& name);
void set_xattr_at(int dirfd, const std::string& name, const std::string& key, const std::string& value);
void remove_xattr_at(int dirfd, const std::string& name, const std::string& key);
bool is_opaque_at(int dirfd, const std::string& name);

// Owner, xattrs, mode, then times (in that order: chown clears setuid bits and security.capability).
void copy_metadata_at(int src_dir, const std::string& src_name, const struct stat& st, int dst_dir,
                      const std::string& dst_name);
// Whole-file content of src_fd into dst_fd (both open, dst empty).
void copy_file_data(int src_fd, int dst_fd, DataCopy mode);

// Copies entries into a destination tree, remembering which inodes it already copied so a second
// name of a hardlinked file becomes a link again.
class TreeCopier {
 public:
  // dest_root: the root of the destination tree; dst_rel arguments are relative to it.
  TreeCopier(DataCopy mode, int dest_root) : mode_(mode), dest_root_(dest_root) {}

  // Copies src_dir/name (recursively when a directory) to dst_dir/name; dst must not exist.
  void copy_entry(int src_dir, const std::string& name, int dst_dir, const std::string& dst_rel);
  // Copies the children of src_dir into the existing dst_dir.
  void copy_children(int src_dir, int dst_dir, const std::string& dst_rel);

 private:
  bool link_if_seen(const struct stat& st, int dst_dir, const std::string& name, const std::string& dst_rel);
  void copy_regular(int src_dir, const std::string& name, int dst_dir);

  DataCopy mode_;
  int dest_root_;
  std::map<std::pair<dev_t, ino_t>, std::string> seen_;
};

// dst (which must not exist) becomes a copy of the directory tree src.
void copy_tree(const std::filesystem::path& src, const std::filesystem::path& dst, DataCopy mode);

// Removes dirfd/name recursively; no error when it does not exist.
void remove_entry_at(int dirfd, const std::string& name);
void remove_tree(const std::filesystem::path& path);

}  // namespace deltabox::delta
