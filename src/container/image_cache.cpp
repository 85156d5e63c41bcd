#include "container/image_cache.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>

#include "delta/dedup.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

constexpr const char* kComplete = ".complete";

void copy_file_synced(const std::filesystem::path& from, const std::filesystem::path& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throw_errno(fmt::format("open {}", from.string()));
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out) throw_errno(fmt::format("create {}", to.string()));
  for (;;) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, size_t{1} << 30, 0);
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) {
      char buf[1 << 16];
      while ((n = ::read(in.get(), buf, sizeof buf)) > 0)
        if (::write(out.get(), buf, static_cast<size_t>(n)) != n) throw_errno(fmt::format("write {}", to.string()));
    }
    if (n < 0) throw_errno(fmt::format("copy {} to {}", from.string(), to.string()));
    if (n == 0) break;
  }
  if (::fdatasync(out.get()) < 0) throw_errno(fmt::format("fsync {}", to.string()));
}

}  // namespace

uint64_t ImageCache::cap_from(const std::map<std::string, std::string>& annotations) {
  auto it = annotations.find("io.deltabox.image-cache");
  if (it == annotations.end()) return kDefaultImageCacheBytes;
  try {
    return std::stoull(it->second);
  } catch (const std::exception&) {
    log::warn("ignoring annotation io.deltabox.image-cache={}: not a number", it->second);
    return kDefaultImageCacheBytes;
  }
}

bool ImageCache::fits(uint64_t estimate, uint64_t used, uint64_t cap, uint64_t fs_free) {
  return cap > 0 && used + estimate <= cap && estimate <= fs_free / 2;
}

std::filesystem::path ImageCache::reserve(const std::string& snapshot, uint64_t estimate) const {
  struct statfs fs {};
  const auto parent = dir_.parent_path();
  if (cap_ == 0 || ::statfs(parent.c_str(), &fs) < 0 || fs.f_type != TMPFS_MAGIC) return {};
  if (!fits(estimate, used(), cap_, static_cast<uint64_t>(fs.f_bavail) * static_cast<uint64_t>(fs.f_bsize))) return {};
  std::filesystem::create_directories(dir(snapshot));
  return dir(snapshot);
}

void ImageCache::remove(const std::string& snapshot) const {
  std::error_code ec;
  std::filesystem::remove_all(dir(snapshot), ec);
  if (ec) log::warn("remove cached images {}: {}", dir(snapshot).string(), ec.message());
}

uint64_t ImageCache::used() const {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) total += directory_bytes(e.path());
  return total;
}

uint64_t directory_bytes(const std::filesystem::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

uint64_t resident_bytes(const std::vector<pid_t>& pids) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t total = 0;
  for (pid_t pid : pids) {
    try {
      unsigned long size = 0, resident = 0;
      if (std::sscanf(read_file(fmt::format("/proc/{}/statm", pid)).c_str(), "%lu %lu", &size, &resident) == 2)
        total += resident * page;
    } catch (const Error&) {
    }
  }
  return total;
}

void copy_images_to_store(const std::filesystem::path& from, const std::filesystem::path& to,
                          const std::filesystem::path& parent_images) {
  if (std::filesystem::exists(to / kComplete)) return;
  std::filesystem::remove_all(to);
  std::filesystem::create_directory(to);
  try {
    for (const auto& e : std::filesystem::directory_iterator(from))
      if (e.is_regular_file()) copy_file_synced(e.path(), to / e.path().filename());
    if (!parent_images.empty() && !std::filesystem::is_symlink(parent_images) &&
        std::filesystem::is_directory(parent_images))
      delta::dedup_against_parent(to, parent_images);
    write_file_atomic(to / kComplete, "", 0600, Durability::survive_process_crash);
  } catch (...) {
    // A full store, say: the images stay in the cache, and no half copy stays in the store.
    std::error_code ec;
    std::filesystem::remove_all(to, ec);
    throw;
  }
}

void swap_in_spilled_images(const std::filesystem::path& images, const std::filesystem::path& spilled) {
  if (::renameat2(AT_FDCWD, spilled.c_str(), AT_FDCWD, images.c_str(), RENAME_EXCHANGE) < 0)
    throw_errno(fmt::format("swap {} and {}", spilled.string(), images.string()));
  fsync_dir(images.parent_path());
  // `spilled` is now the symlink to the cache
  if (::unlink(spilled.c_str()) < 0) throw_errno(fmt::format("unlink {}", spilled.string()));
  ::unlink((images / kComplete).c_str());
}

}  // namespace deltabox
