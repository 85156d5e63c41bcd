#include "delta/copy.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>

#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox::delta {
namespace {

// The *xattr syscalls have no dirfd variant in glibc 2.36; going through the directory fd's
// magic link keeps the walk fd-relative (no path re-resolution from /), and the l* variants do not
// follow `name` itself when it is a symlink.
std::string proc_path(int dirfd, const std::string& name) { return fmt::format("/proc/self/fd/{}/{}", dirfd, name); }

bool is_overlay_xattr(const std::string& key) { return key.rfind("trusted.overlay.", 0) == 0; }

void warn_skipped_xattr(const std::string& key, int err) {
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) {
    log::warn("layer copy: the destination refuses xattr {} ({}); such xattrs are not copied", key,
              std::strerror(err));
  }
}

UniqueFd open_source_file(int dirfd, const std::string& name) {
  // O_NOATIME: copying a layer must not dirty the source's inodes.
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw_errno(fmt::format("open {}", name));
  return UniqueFd(fd);
}

void copy_by_read_write(int src_fd, int dst_fd) {
  std::array<char, 1 << 16> buf;
  for (;;) {
    ssize_t n = ::read(src_fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read");
    if (n == 0) return;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(dst_fd, buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) throw_errno("write");
      done += w;
    }
  }
}

void copy_by_range(int src_fd, int dst_fd) {
  for (;;) {
    ssize_t n = ::copy_file_range(src_fd, nullptr, dst_fd, nullptr, size_t{1} << 30, 0);
    if (n > 0) continue;
    if (n == 0) return;
    if (errno == EINTR) continue;
    if (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS) {
      return copy_by_read_write(src_fd, dst_fd);
    }
    throw_errno("copy_file_range");
  }
}

}  // namespace

bool is_whiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

UniqueFd open_dir_at(int dirfd, const std::string& name) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open directory {}", name));
  return fd;
}

std::vector<std::string> list_dir(int dirfd) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open directory");
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    throw_errno("fdopendir");
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

Xattrs read_xattrs_at(int dirfd, const std::string& name) {
  std::string path = proc_path(dirfd, name);
  Xattrs out;
  std::string keys;
  for (;;) {
    ssize_t size = ::llistxattr(path.c_str(), nullptr, 0);
    if (size < 0 && (errno == EOPNOTSUPP || errno == ENOTSUP)) return out;
    if (size < 0) throw_errno(fmt::format("list xattrs of {}", name));
    keys.resize(static_cast<size_t>(size));
    size = ::llistxattr(path.c_str(), keys.data(), keys.size());
    if (size < 0 && errno == ERANGE) continue;  // grew in between
    if (size < 0) throw_errno(fmt::format("list xattrs of {}", name));
    keys.resize(static_cast<size_t>(size));
    break;
  }
  for (size_t pos = 0; pos < keys.size();) {
    std::string key = keys.c_str() + pos;
    pos += key.size() + 1;
    if (key.empty()) continue;
    std::string value;
    for (;;) {
      ssize_t size = ::lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
      if (size < 0 && errno == ENODATA) break;
      if (size < 0) throw_errno(fmt::format("get xattr {} of {}", key, name));
      value.resize(static_cast<size_t>(size));
      size = ::lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
      if (size < 0 && errno == ERANGE) continue;
      if (size < 0) throw_errno(fmt::format("get xattr {} of {}", key, name));
      value.resize(static_cast<size_t>(size));
      out.emplace(std::move(key), std::move(value));
      break;
    }
  }
  return out;
}

void set_xattr_at(int dirfd, const std::string& name, const std::string& key, const std::string& value) {
  std::string path = proc_path(dirfd, name);
  if (::lsetxattr(path.c_str(), key.c_str(), value.data(), value.size(), 0) == 0) return;
  int err = errno;
  // Overlay's own xattrs carry the layer's meaning (opaque dirs): losing one changes the view.
  if (!is_overlay_xattr(key) && (err == EOPNOTSUPP || err == EPERM)) return warn_skipped_xattr(key, err);
  throw_errno(err, fmt::format("set xattr {} on {}", key, name));
}

void remove_xattr_at(int dirfd, const std::string& name, const std::string& key) {
  std::string path = proc_path(dirfd, name);
  if (::lremovexattr(path.c_str(), key.c_str()) < 0 && errno != ENODATA) {
    throw_errno(fmt::format("remove xattr {} from {}", key, name));
  }
}

bool is_opaque_at(int dirfd, const std::string& name) {
  std::string path = proc_path(dirfd, name);
  char value[4];
  ssize_t n = ::lgetxattr(path.c_str(), kOpaqueXattr, value, sizeof value);
  return n == 1 && value[0] == 'y';
}

void copy_metadata_at(int src_dir, const std::string& src_name, const struct stat& st, int dst_dir,
                      const std::string& dst_name) {
  check(::fchownat(dst_dir, dst_name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW), "chown {}", dst_name);
  for (const auto& [key, value] : read_xattrs_at(src_dir, src_name)) set_xattr_at(dst_dir, dst_name, key, value);
  if (!S_ISLNK(st.st_mode)) {
    check(::fchmodat(dst_dir, dst_name.c_str(), st.st_mode & 07777, 0), "chmod {}", dst_name);
  }
  const timespec times[2] = {st.st_atim, st.st_mtim};
  check(::utimensat(dst_dir, dst_name.c_str(), times, AT_SYMLINK_NOFOLLOW), "set times of {}", dst_name);
}

void copy_file_data(int src_fd, int dst_fd, DataCopy mode) {
  if (mode == DataCopy::reflink) {
    if (::ioctl(dst_fd, FICLONE, src_fd) == 0) return;
    if (errno != EOPNOTSUPP && errno != EXDEV && errno != EINVAL && errno != ENOTTY) throw_errno("FICLONE");
  }
  copy_by_range(src_fd, dst_fd);
}

bool TreeCopier::link_if_seen(const struct stat& st, int dst_dir, const std::string& name,
                              const std::string& dst_rel) {
  if (S_ISDIR(st.st_mode) || st.st_nlink < 2) return false;
  auto [it, inserted] = seen_.try_emplace({st.st_dev, st.st_ino}, dst_rel);
  if (inserted) return false;
  // The first copy carries the metadata already; a link shares it.
  check(::linkat(dest_root_, it->second.c_str(), dst_dir, name.c_str(), 0), "link {} to {}", dst_rel, it->second);
  return true;
}

void TreeCopier::copy_regular(int src_dir, const std::string& name, int dst_dir) {
  UniqueFd src = open_source_file(src_dir, name);
  UniqueFd dst(::openat(dst_dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!dst) throw_errno(fmt::format("create {}", name));
  try {
    copy_file_data(src.get(), dst.get(), mode_);
  } catch (const Error& e) {
    throw Error(fmt::format("copy {}: {}", name, e.what()), e.code());
  }
}

void TreeCopier::copy_entry(int src_dir, const std::string& name, int dst_dir, const std::string& dst_rel) {
  struct stat st;
  check(::fstatat(src_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW), "stat {}", name);
  if (link_if_seen(st, dst_dir, name, dst_rel)) return;
  switch (st.st_mode & S_IFMT) {
    case S_IFDIR: {
      check(::mkdirat(dst_dir, name.c_str(), 0700), "mkdir {}", dst_rel);
      UniqueFd src = open_dir_at(src_dir, name);
      UniqueFd dst = open_dir_at(dst_dir, name);
      copy_children(src.get(), dst.get(), dst_rel);
      break;
    }
    case S_IFREG:
      copy_regular(src_dir, name, dst_dir);
      break;
    case S_IFLNK: {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = check(::readlinkat(src_dir, name.c_str(), target.data(), target.size()), "readlink {}", name);
      target.resize(static_cast<size_t>(n));
      check(::symlinkat(target.c_str(), dst_dir, name.c_str()), "symlink {}", dst_rel);
      break;
    }
    default:  // devices (whiteouts among them), fifos, sockets
      check(::mknodat(dst_dir, name.c_str(), st.st_mode, st.st_rdev), "mknod {}", dst_rel);
      break;
  }
  copy_metadata_at(src_dir, name, st, dst_dir, name);
}

void TreeCopier::copy_children(int src_dir, int dst_dir, const std::string& dst_rel) {
  for (const std::string& name : list_dir(src_dir)) {
    copy_entry(src_dir, name, dst_dir, dst_rel.empty() ? name : dst_rel + "/" + name);
  }
}

void copy_tree(const std::filesystem::path& src, const std::filesystem::path& dst, DataCopy mode) {
  UniqueFd src_fd(::open(src.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!src_fd) throw_errno(fmt::format("open {}", src.string()));
  check(::mkdir(dst.c_str(), 0700), "mkdir {}", dst.string());
  UniqueFd dst_fd(::open(dst.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dst_fd) throw_errno(fmt::format("open {}", dst.string()));
  try {
    TreeCopier(mode, dst_fd.get()).copy_children(src_fd.get(), dst_fd.get(), "");
    struct stat st;
    check(::fstat(src_fd.get(), &st), "stat {}", src.string());
    copy_metadata_at(src_fd.get(), ".", st, dst_fd.get(), ".");
  } catch (const Error& e) {
    throw Error(fmt::format("copy {} to {}: {}", src.string(), dst.string(), e.what()), e.code());
  }
}

void remove_entry_at(int dirfd, const std::string& name) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return;
    throw_errno(fmt::format("stat {}", name));
  }
  if (S_ISDIR(st.st_mode)) {
    {
      UniqueFd dir = open_dir_at(dirfd, name);
      for (const std::string& child : list_dir(dir.get())) remove_entry_at(dir.get(), child);
    }
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
      throw_errno(fmt::format("rmdir {}", name));
  } else if (::unlinkat(dirfd, name.c_str(), 0) < 0 && errno != ENOENT) {
    throw_errno(fmt::format("unlink {}", name));
  }
}

void remove_tree(const std::filesystem::path& path) {
  auto clean = path.lexically_normal();
  if (!clean.has_filename()) clean = clean.parent_path();
  auto parent = clean.parent_path();
  UniqueFd dir(::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT) return;
    throw_errno(fmt::format("open {}", parent.string()));
  }
  try {
    remove_entry_at(dir.get(), clean.filename().string());
  } catch (const Error& e) {
    throw Error(fmt::format("remove {}: {}", path.string(), e.what()), e.code());
  }
}

}  // namespace deltabox::delta
