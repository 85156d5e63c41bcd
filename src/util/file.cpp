#include "util/file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "util/error.hpp"

namespace deltabox {

std::string read_file_at(int dirfd, const std::string& path) {
  UniqueFd fd(::openat(dirfd, path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path));
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(fmt::format("read {}", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string read_file(const std::filesystem::path& path) { return read_file_at(AT_FDCWD, path.string()); }

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void write_file(const std::filesystem::path& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  ssize_t n = ::write(fd.get(), data.data(), data.size());
  if (n < 0) throw_errno(fmt::format("write {}", path.string()));
}

void write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode,
                       Durability durability) {
  const bool sync = durability == Durability::survive_power_loss;
  auto dir = path.parent_path();
  if (dir.empty()) dir = ".";
  auto tmp = dir / ("." + path.filename().string() + ".tmp");
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) throw_errno(fmt::format("create {}", tmp.string()));
    try {
      write_all(fd.get(), data);
      if (sync && ::fsync(fd.get()) < 0) throw_errno(fmt::format("fsync {}", tmp.string()));
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw_errno(err, fmt::format("rename {} to {}", tmp.string(), path.string()));
  }
  if (sync) fsync_dir(dir);
}

void fsync_dir(const std::filesystem::path& dir) {
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) throw_errno(fmt::format("open {}", dir.string()));
  if (::fsync(dfd.get()) < 0) throw_errno(fmt::format("fsync {}", dir.string()));
}

}  // namespace deltabox
