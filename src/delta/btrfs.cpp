#include "delta/btrfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cstring>
#include <string>
#include <vector>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace deltabox::delta::btrfs {
namespace {

// The objectid of every subvolume's root directory.
constexpr ino_t kSubvolumeRootIno = 256;

UniqueFd open_dir(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

// The ioctls take a parent directory fd and a single name component.
struct ParentAndName {
  UniqueFd parent;
  std::string name;
};

ParentAndName split(const std::filesystem::path& path) {
  auto clean = path.lexically_normal();
  if (!clean.has_filename()) clean = clean.parent_path();
  std::string name = clean.filename().string();
  if (name.empty() || name == "." || name == ".." || name.size() > BTRFS_SUBVOL_NAME_MAX) {
    fail("invalid subvolume path {}", path.string());
  }
  auto parent = clean.parent_path();
  return {open_dir(parent.empty() ? "." : parent), name};
}

template <typename Args>
void set_name(Args& args, const std::string& name) {
  std::memcpy(args.name, name.data(), name.size());
  args.name[name.size()] = '\0';
}

// Subvolume roots below dir (not descending into them): they block deletion of dir's subvolume.
void find_nested(const std::filesystem::path& dir, std::vector<std::filesystem::path>& out) {
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) continue;
    if (st.st_ino == kSubvolumeRootIno) {
      out.push_back(it->path());
    } else {
      find_nested(it->path(), out);
    }
  }
}

void destroy_one(const std::filesystem::path& path) {
  auto [parent, name] = split(path);
  btrfs_ioctl_vol_args_v2 args{};
  set_name(args, name);
  if (::ioctl(parent.get(), BTRFS_IOC_SNAP_DESTROY_V2, &args) < 0) {
    throw_errno(fmt::format("delete subvolume {}", path.string()));
  }
}

}  // namespace

bool is_btrfs(const std::filesystem::path& path) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == static_cast<decltype(fs.f_type)>(BTRFS_SUPER_MAGIC);
}

bool is_subvolume(const std::filesystem::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return false;
  return st.st_ino == kSubvolumeRootIno && is_btrfs(path);
}

void create_subvolume(const std::filesystem::path& path) {
  auto [parent, name] = split(path);
  btrfs_ioctl_vol_args_v2 args{};
  set_name(args, name);
  if (::ioctl(parent.get(), BTRFS_IOC_SUBVOL_CREATE_V2, &args) < 0) {
    throw_errno(fmt::format("create subvolume {}", path.string()));
  }
}

void snapshot_subvolume(const std::filesystem::path& source, const std::filesystem::path& dest, bool readonly) {
  UniqueFd src = open_dir(source);
  auto [parent, name] = split(dest);
  btrfs_ioctl_vol_args_v2 args{};
  args.fd = src.get();
  args.flags = readonly ? BTRFS_SUBVOL_RDONLY : 0;
  set_name(args, name);
  if (::ioctl(parent.get(), BTRFS_IOC_SNAP_CREATE_V2, &args) < 0) {
    int err = errno;
    // EINVAL here nearly always means "source is a plain directory, not a subvolume root".
    if (err == EINVAL && !is_subvolume(source)) {
      throw Error(fmt::format("snapshot {} -> {}: source is not a btrfs subvolume", source.string(), dest.string()),
                  err);
    }
    throw_errno(err, fmt::format("snapshot {} -> {}", source.string(), dest.string()));
  }
}

void destroy_subvolume(const std::filesystem::path& path) {
  try {
    destroy_one(path);
  } catch (const Error& e) {
    if (e.code() != ENOTEMPTY) throw;
    // A nested subvolume lives inside (e.g. created by a container on its own rootfs); deleting it
    // needs the parent writable for the moment.
    bool was_readonly = is_readonly(path);
    if (was_readonly) set_readonly(path, false);
    std::vector<std::filesystem::path> nested;
    find_nested(path, nested);
    for (const auto& sub : nested) destroy_subvolume(sub);
    destroy_one(path);
  }
}

void set_readonly(const std::filesystem::path& subvolume, bool readonly) {
  UniqueFd fd = open_dir(subvolume);
  uint64_t flags = 0;
  if (::ioctl(fd.get(), BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0) {
    throw_errno(fmt::format("get subvolume flags of {}", subvolume.string()));
  }
  flags = readonly ? (flags | BTRFS_SUBVOL_RDONLY) : (flags & ~uint64_t{BTRFS_SUBVOL_RDONLY});
  if (::ioctl(fd.get(), BTRFS_IOC_SUBVOL_SETFLAGS, &flags) < 0) {
    throw_errno(fmt::format("set subvolume {} {}", subvolume.string(), readonly ? "read-only" : "writable"));
  }
}

bool is_readonly(const std::filesystem::path& subvolume) {
  UniqueFd fd = open_dir(subvolume);
  uint64_t flags = 0;
  if (::ioctl(fd.get(), BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0) {
    throw_errno(fmt::format("get subvolume flags of {}", subvolume.string()));
  }
  return (flags & BTRFS_SUBVOL_RDONLY) != 0;
}

}  // namespace deltabox::delta::btrfs
