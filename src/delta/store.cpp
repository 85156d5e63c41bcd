#include "delta/store.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "delta/btrfs.hpp"
#include "delta/copy.hpp"
#include "delta/image.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

namespace deltabox::delta {
namespace {

std::atomic<bool> g_warned_fallback{false};

void warn_fallback(const std::filesystem::path& dir, Backend backend, const std::string& why) {
  if (g_warned_fallback.exchange(true)) return;
  log::warn("layer store {}: {}; using the {} backend (snapshots copy {})", dir.string(), why, backend_name(backend),
            backend == Backend::reflink ? "metadata and share data" : "all data");
}

bool dir_is_empty(const std::filesystem::path& dir) {
  return std::filesystem::is_empty(dir);
}

class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (!fd_) throw_errno(fmt::format("open lock {}", path.string()));
    while (::flock(fd_.get(), LOCK_EX) < 0) {
      if (errno != EINTR) throw_errno(fmt::format("lock {}", path.string()));
    }
  }

 private:
  UniqueFd fd_;  // closing it releases the lock
};

// Mounts the store image at root, creating the image on first use. Returns false when root
// already holds a store of a fallback backend (never mounted over); throws when it cannot mount.
bool mount_store_image(const std::filesystem::path& root, const StoreOptions& options) {
  FileLock lock(LayerStore::lock_path(root));
  if (btrfs::is_btrfs(root)) return true;  // another process mounted it while we waited
  auto image = LayerStore::image_path(root);
  if (std::filesystem::exists(image) && !dir_is_empty(root)) {
    fail("layer store {} is not empty but its image {} exists: refusing to hide either; move one away",
         root.string(), image.string());
  }
  if (std::filesystem::exists(image)) {
    // The layers live in there: failing to mount it is an error, not a reason to start afresh.
    image::mount_btrfs(image, root, options.barriers);
    return true;
  }
  if (!dir_is_empty(root)) return false;
  image::create_btrfs(image, options.image_size);
  try {
    image::mount_btrfs(image, root, options.barriers);
  } catch (...) {
    std::filesystem::remove(image);  // nothing in it yet; the next open decides again
    throw;
  }
  log::debug("layer store {}: created btrfs image {}", root.string(), image.string());
  return true;
}

// Whether files in dir can share extents (FICLONE between two unnamed files).
bool supports_reflink(const std::filesystem::path& dir) {
  UniqueFd a(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  UniqueFd b(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!a || !b) return false;
  std::string block(4096, 'x');
  if (::pwrite(a.get(), block.data(), block.size(), 0) != static_cast<ssize_t>(block.size())) return false;
  return ::ioctl(b.get(), FICLONE, a.get()) == 0;
}

Backend fallback_backend(const std::filesystem::path& root) {
  return supports_reflink(root) ? Backend::reflink : Backend::copy;
}

UniqueFd open_dir(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

// A dir of layers on btrfs: subvolumes go by ioctl (read-only ones could not be emptied file by
// file), everything else by unlink.
void remove_btrfs_tree(const std::filesystem::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return;
    throw_errno(fmt::format("stat {}", path.string()));
  }
  if (!S_ISDIR(st.st_mode)) {
    check(::unlink(path.c_str()), "unlink {}", path.string());
    return;
  }
  if (btrfs::is_subvolume(path)) return btrfs::destroy_subvolume(path);
  for (const auto& entry : std::filesystem::directory_iterator(path)) remove_btrfs_tree(entry.path());
  check(::rmdir(path.c_str()), "rmdir {}", path.string());
}

// Explicit chmod: the caller's umask must not leak into the container's root dir.
void make_dir_0755(const std::filesystem::path& path) {
  check(::mkdir(path.c_str(), 0755), "mkdir {}", path.string());
  check(::chmod(path.c_str(), 0755), "chmod {}", path.string());
}

void copy_root_attributes(const std::filesystem::path& from, const std::filesystem::path& to) {
  struct stat st;
  check(::stat(from.c_str(), &st), "stat {}", from.string());
  check(::chown(to.c_str(), st.st_uid, st.st_gid), "chown {}", to.string());
  check(::chmod(to.c_str(), st.st_mode & 07777), "chmod {}", to.string());
  const timespec times[2] = {st.st_atim, st.st_mtim};
  check(::utimensat(AT_FDCWD, to.c_str(), times, 0), "set times of {}", to.string());
}

}  // namespace

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::btrfs: return "btrfs";
    case Backend::reflink: return "reflink";
    case Backend::copy: return "copy";
  }
  return "unknown";
}

std::filesystem::path LayerStore::image_path(const std::filesystem::path& dir) {
  auto clean = std::filesystem::absolute(dir).lexically_normal();
  if (!clean.has_filename()) clean = clean.parent_path();
  clean += ".img";
  return clean;
}

std::filesystem::path LayerStore::lock_path(const std::filesystem::path& dir) {
  auto clean = std::filesystem::absolute(dir).lexically_normal();
  if (!clean.has_filename()) clean = clean.parent_path();
  clean += ".lock";
  return clean;
}

LayerStore LayerStore::open(const std::filesystem::path& dir, const StoreOptions& options) {
  std::filesystem::create_directories(dir);
  auto root = std::filesystem::canonical(dir);
  if (btrfs::is_btrfs(root)) return LayerStore(root, Backend::btrfs);
  if (options.create_loop_image) {
    try {
      if (mount_store_image(root, options)) return LayerStore(root, Backend::btrfs);
      Backend backend = fallback_backend(root);
      warn_fallback(root, backend, "not btrfs and not empty (a store of a fallback backend), not mounting over it");
      return LayerStore(root, backend);
    } catch (const Error& e) {
      if (std::filesystem::exists(image_path(root))) throw;  // an existing store that will not mount
      Backend backend = fallback_backend(root);
      warn_fallback(root, backend, fmt::format("cannot make a btrfs image ({})", e.what()));
      return LayerStore(root, backend);
    }
  }
  Backend backend = fallback_backend(root);
  warn_fallback(root, backend, "not on btrfs");
  return LayerStore(root, backend);
}

void LayerStore::create_writable(const std::filesystem::path& path, const std::filesystem::path& root_like) const {
  std::filesystem::create_directories(path.parent_path());
  if (backend_ == Backend::btrfs) {
    btrfs::create_subvolume(path);
  } else {
    check(::mkdir(path.c_str(), 0755), "mkdir {}", path.string());
  }
  try {
    make_dir_0755(path / "upper");
    make_dir_0755(path / "work");
    if (!root_like.empty()) copy_root_attributes(root_like, path / "upper");
  } catch (...) {
    remove(path);
    throw;
  }
}

void LayerStore::snapshot(const std::filesystem::path& source, const std::filesystem::path& dest, bool readonly) const {
  std::filesystem::create_directories(dest.parent_path());
  if (backend_ == Backend::btrfs) return btrfs::snapshot_subvolume(source, dest, readonly);
  try {
    copy_tree(source, dest, backend_ == Backend::reflink ? DataCopy::reflink : DataCopy::copy);
  } catch (...) {
    remove(dest);
    throw;
  }
}

void LayerStore::remove(const std::filesystem::path& path) const {
  if (backend_ == Backend::btrfs) return remove_btrfs_tree(path);
  remove_tree(path);
}

void LayerStore::flush(const std::filesystem::path& path) const {
  UniqueFd fd = open_dir(path);
  check(::syncfs(fd.get()), "syncfs {}", path.string());
}

}  // namespace deltabox::delta
