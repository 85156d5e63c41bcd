#include "cgroups/cgroup_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>

#include "cgroups/paths.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::cgroups {
namespace {

using namespace std::chrono_literals;

// A cgroup's rmdir fails with EBUSY until the kernel has finished moving its last exiting tasks
// out; that takes a moment after wait_empty() returns, so retry for a bounded time.
constexpr auto kRmdirPatience = 2s;

std::string path_below(std::string_view mount_point, std::string_view path) {
  // path is validated to be strictly below mount_point, so this is the part after "mount/".
  return std::string(path.substr(mount_point == "/" ? 1 : mount_point.size() + 1));
}

std::vector<std::string> components(const std::string& rel) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t end = std::min(rel.find('/', pos), rel.size());
    if (end > pos) out.push_back(rel.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

std::string resolved(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) return {};  // errno stays for the caller
  std::string out(real);
  std::free(real);
  return out;
}

void rmdir_retrying(int dirfd, const std::string& name, const std::string& display) {
  auto deadline = std::chrono::steady_clock::now() + kRmdirPatience;
  auto backoff = 1ms;
  for (;;) {
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return;
    if (errno != EBUSY || std::chrono::steady_clock::now() >= deadline)
      throw_errno(fmt::format("remove cgroup {}", display));
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 50ms);
  }
}

std::vector<std::string> subdirectories(int dirfd, const std::string& display) {
  int dup = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) throw_errno(fmt::format("dup fd of {}", display));
  struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> d(::fdopendir(dup));
  if (!d) {
    ::close(dup);
    throw_errno(fmt::format("list {}", display));
  }
  std::vector<std::string> out;
  while (auto* e = ::readdir(d.get())) {
    std::string_view name = e->d_name;
    if (e->d_type == DT_DIR && name != "." && name != "..") out.emplace_back(name);
  }
  return out;
}

// Sub-cgroups only: cgroupfs files vanish with their directory and must not be unlinked.
void remove_subcgroups(int dirfd, const std::string& display) {
  for (const auto& name : subdirectories(dirfd, display)) {
    auto child_display = display + "/" + name;
    UniqueFd child(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) {
      if (errno == ENOENT) continue;
      throw_errno(fmt::format("open {}", child_display));
    }
    remove_subcgroups(child.get(), child_display);
    rmdir_retrying(dirfd, name, child_display);
  }
}

void append_procs(int dirfd, const std::string& display, std::vector<pid_t>& out) {
  std::string text;
  try {
    text = read_file_at(dirfd, "cgroup.procs");
  } catch (const Error& e) {
    if (e.code() == ENOENT || e.code() == ENODEV) return;  // removed while we walked it
    throw;
  }
  const char* p = text.c_str();
  while (*p) {
    char* end = nullptr;
    long pid = std::strtol(p, &end, 10);
    if (end == p) break;
    // A process outside our pid namespace reads as 0; kill(0) would hit our own process group.
    if (pid > 0) out.push_back(static_cast<pid_t>(pid));
    p = end;
    while (*p == '\n') ++p;
  }
  for (const auto& name : subdirectories(dirfd, display)) {
    UniqueFd child(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) {
      if (errno == ENOENT) continue;
      throw_errno(fmt::format("open {}/{}", display, name));
    }
    append_procs(child.get(), display + "/" + name, out);
  }
}

}  // namespace

void write_raw(const char* path, std::string_view data) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(fmt::format("open {}", path));
  ssize_t n = ::write(fd, data.data(), data.size());
  int err = errno;
  ::close(fd);
  if (n < 0) throw_errno(err, fmt::format("write {:?} to {}", data, path));
}

CgroupDir::CgroupDir(Placement placement) : placement_(std::move(placement)) { validate_placement(placement_); }

std::string CgroupDir::file(std::string_view name) const { return fmt::format("{}/{}", dir(), name); }

void CgroupDir::create(const PrepareHook& prepare) {
  const auto& mount_point = hierarchy().mount_point;
  UniqueFd parent(::open(mount_point.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!parent) throw_errno(fmt::format("open cgroup mount {}", mount_point));
  std::string current = mount_point == "/" ? "" : mount_point;
  const size_t created_before = placement_.created.size();
  try {
    for (const auto& name : components(path_below(mount_point, dir()))) {
      current += "/" + name;
      if (::mkdirat(parent.get(), name.c_str(), 0755) == 0)
        placement_.created.push_back(current);
      else if (errno != EEXIST)
        throw_errno(fmt::format("create cgroup {}", current));
      UniqueFd next(::openat(parent.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next) throw_errno(fmt::format("open {} (a cgroup must be a directory, not a symlink)", current));
      if (prepare) prepare(parent.get(), next.get());
      parent = std::move(next);
    }
  } catch (...) {
    while (placement_.created.size() > created_before) {
      ::rmdir(placement_.created.back().c_str());
      placement_.created.pop_back();
    }
    throw;
  }
}

void CgroupDir::remove() {
  const auto& created = placement_.created;
  if (created.empty()) return;
  if (created.back() == dir()) remove_leaf();
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    if (*it == dir()) continue;
    if (!remove_parent(*it)) break;  // still in use: so are its ancestors
  }
}

void CgroupDir::remove_leaf() {
  if (!verify_on_disk(dir())) return;
  UniqueFd fd(::open(dir().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return;
    throw_errno(fmt::format("open {}", dir()));
  }
  remove_subcgroups(fd.get(), dir());
  rmdir_retrying(AT_FDCWD, dir(), dir());
}

bool CgroupDir::remove_parent(const std::string& path) {
  if (!verify_on_disk(path)) return true;
  if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
  if (errno == EBUSY || errno == ENOTEMPTY) return false;
  throw_errno(fmt::format("remove cgroup {}", path));
}

std::string CgroupDir::read(std::string_view name) const { return read_file(file(name)); }

void CgroupDir::write(std::string_view name, std::string_view data) const { write_raw(file(name).c_str(), data); }

void CgroupDir::write_checked(std::string_view name, std::string_view data) const {
  verify_on_disk();
  write(name, data);
}

bool CgroupDir::has(std::string_view name) const { return ::access(file(name).c_str(), F_OK) == 0; }

bool CgroupDir::exists() const {
  struct stat st {};
  return ::lstat(dir().c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<pid_t> CgroupDir::procs() const {
  std::vector<pid_t> out;
  UniqueFd fd(::open(dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return out;
    throw_errno(fmt::format("open {}", dir()));
  }
  append_procs(fd.get(), dir(), out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

UniqueFd CgroupDir::open_dir() const {
  UniqueFd fd(::open(dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open cgroup {}", dir()));
  return fd;
}

bool CgroupDir::verify_on_disk(const std::string& path) const {
  const auto& mount_point = hierarchy().mount_point;
  if (!is_strictly_below(path, mount_point))
    fail("cgroup directory {} is not below the mount {}: refused", path, mount_point);
  auto real_mount = resolved(mount_point);
  if (real_mount.empty()) throw_errno(fmt::format("resolve cgroup mount {}", mount_point));
  auto real = resolved(path);
  if (real.empty()) {
    if (errno == ENOENT) return false;
    throw_errno(fmt::format("resolve cgroup directory {}", path));
  }
  auto expected = (real_mount == "/" ? "" : real_mount) + "/" + path_below(mount_point, path);
  if (real != expected)
    fail("cgroup directory {} resolves to {} instead of {}: refused", path, real, expected);
  return true;
}

void CgroupDir::verify_on_disk() const {
  if (!verify_on_disk(dir())) throw Error(fmt::format("cgroup {} does not exist", dir()), ENOENT);
}

}  // namespace deltabox::cgroups
