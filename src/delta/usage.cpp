// LayerStore::exclusive_bytes: what deleting a snapshot would give back, per FIEMAP.
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "delta/copy.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace deltabox::delta {
namespace {

constexpr uint32_t kExtentsPerCall = 512;

// Bytes of the file's extents that are not shared (reflinks, snapshots, dedup), or nullopt when
// the filesystem has no FIEMAP.
std::optional<uint64_t> unshared_extent_bytes(int fd) {
  std::vector<std::byte> buffer(sizeof(fiemap) + kExtentsPerCall * sizeof(fiemap_extent));
  auto* map = reinterpret_cast<fiemap*>(buffer.data());
  uint64_t start = 0, total = 0;
  // SYNC on the first call: delayed-allocation extents have no location and no shared flag yet.
  uint32_t flags = FIEMAP_FLAG_SYNC;
  for (;;) {
    std::fill(buffer.begin(), buffer.end(), std::byte{0});
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = flags;
    map->fm_extent_count = kExtentsPerCall;
    if (::ioctl(fd, FS_IOC_FIEMAP, map) < 0) {
      if (errno == EOPNOTSUPP || errno == ENOTTY) return std::nullopt;
      throw_errno("FIEMAP");
    }
    flags = 0;
    if (map->fm_mapped_extents == 0) return total;
    for (uint32_t i = 0; i < map->fm_mapped_extents; ++i) {
      const fiemap_extent& extent = map->fm_extents[i];
      if (!(extent.fe_flags & FIEMAP_EXTENT_SHARED)) total += extent.fe_length;
      if (extent.fe_flags & FIEMAP_EXTENT_LAST) return total;
    }
    const fiemap_extent& last = map->fm_extents[map->fm_mapped_extents - 1];
    start = last.fe_logical + last.fe_length;
  }
}

class UsageWalker {
 public:
  uint64_t total = 0;

  // Files may go while we count (the helper swapping a snapshot's spilled images in, a
  // removal): what is gone takes no room.
  void entry(int dir, const std::string& name) {
    struct stat st;
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return;
      throw_errno(fmt::format("stat {}", name));
    }
    if (!seen_.insert({st.st_dev, st.st_ino}).second) return;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub;
      try {
        sub = open_dir_at(dir, name);
      } catch (const Error& e) {
        if (e.code() == ENOENT) return;
        throw;
      }
      for (const std::string& child : list_dir(sub.get())) entry(sub.get(), child);
    } else if (S_ISREG(st.st_mode)) {
      UniqueFd fd(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd && errno == ENOENT) return;
      if (!fd) throw_errno(fmt::format("open {}", name));
      auto bytes = unshared_extent_bytes(fd.get());
      total += bytes ? *bytes : static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }

 private:
  std::set<std::pair<dev_t, ino_t>> seen_;
};

}  // namespace

uint64_t LayerStore::exclusive_bytes(const std::filesystem::path& path) const {
  auto clean = path.lexically_normal();
  if (!clean.has_filename()) clean = clean.parent_path();
  auto parent = clean.parent_path();
  UniqueFd dir(::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) throw_errno(fmt::format("open {}", parent.string()));
  UsageWalker walker;
  try {
    walker.entry(dir.get(), clean.filename().string());
  } catch (const Error& e) {
    throw Error(fmt::format("measure {}: {}", path.string(), e.what()), e.code());
  }
  return walker.total;
}

}  // namespace deltabox::delta
