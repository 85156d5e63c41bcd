#include "linux/safe_path.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <vector>

#include "util/error.hpp"

namespace deltabox {

namespace {

// The kernel's own limit for symlinks followed in one lookup.
constexpr int kMaxSymlinks = 40;
// openat2 returns EAGAIN when a rename or mount races a RESOLVE_IN_ROOT walk; it is safe to
// retry, but not forever.
constexpr int kMaxEagainRetries = 128;

int sys_openat2(int dirfd, const char* path, int flags, mode_t mode, unsigned long long resolve) {
  open_how how{};
  how.flags = static_cast<unsigned long long>(flags | O_CLOEXEC);
  // The kernel rejects a mode without O_CREAT/O_TMPFILE.
  if (flags & (O_CREAT | O_TMPFILE)) how.mode = mode;
  how.resolve = resolve;
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if ((errno != EAGAIN && errno != EINTR) || attempt >= kMaxEagainRetries) return -1;
  }
}

// openat2 wants a relative path for "relative to dirfd"; an absolute one would be relative to the
// root anyway under RESOLVE_IN_ROOT, but an empty string is an error, so map it to ".".
std::string relative_to_root(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return path.empty() ? std::string(".") : std::string(path);
}

void push_components(std::deque<std::string>& todo, std::string_view path, bool front) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(pos, slash - pos);
    if (!part.empty() && part != ".") parts.emplace_back(part);
    pos = slash + 1;
  }
  if (front) {
    todo.insert(todo.begin(), parts.begin(), parts.end());
  } else {
    todo.insert(todo.end(), parts.begin(), parts.end());
  }
}

std::string read_link_at(int dirfd, const std::string& name) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
    if (n < 0) return {};
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

bool is_symlink_at(int dirfd, const std::string& name) {
  struct stat st {};
  return ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

enum class Final { directory, file };

// A userspace RESOLVE_IN_ROOT walk that may create what is missing. The stack holds an fd per
// resolved component, so ".." is a pop (it cannot climb above the root) and every step opens a
// single name beneath the fd of its already-resolved parent with RESOLVE_NO_SYMLINKS: a symlink
// is never followed by the kernel, we read it and splice its target into the remaining path
// (absolute targets restart at the root), which is what makes dangling links safe to create.
class RootWalk {
 public:
  RootWalk(int root_fd, std::string_view path) : root_fd_(root_fd), path_(path) {
    push_components(todo_, path, false);
  }

  UniqueFd run(Final final, mode_t mode) {
    while (!todo_.empty()) {
      std::string name = std::move(todo_.front());
      todo_.pop_front();
      if (name == "..") {
        if (!stack_.empty()) stack_.pop_back();
        continue;
      }
      bool last = todo_.empty();
      if (last && final == Final::file) {
        if (auto fd = step_file(name, mode)) return std::move(*fd);
      } else {
        step_dir(name, mode);
      }
    }
    // Ended on a directory (the path was "/", or ended in ".." or a link to a directory).
    int fd = ::openat(current(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno(fmt::format("open {} inside rootfs", path_));
    return UniqueFd(fd);
  }

 private:
  int current() const { return stack_.empty() ? root_fd_ : stack_.back().get(); }

  [[noreturn]] void fail_at(int err, const std::string& name) const {
    throw_errno(err, fmt::format("resolve {} inside rootfs (at component \"{}\")", path_, name));
  }

  // Returns true when `name` was a symlink and its target has been queued.
  bool follow_if_symlink(const std::string& name) {
    if (!is_symlink_at(current(), name)) return false;
    if (++links_ > kMaxSymlinks) fail_at(ELOOP, name);
    std::string target = read_link_at(current(), name);
    if (target.empty()) fail_at(errno ? errno : ENOENT, name);
    if (target.front() == '/') stack_.clear();
    push_components(todo_, target, true);
    return true;
  }

  void step_dir(const std::string& name, mode_t mode) {
    for (int attempt = 0; attempt < kMaxEagainRetries; ++attempt) {
      int fd = sys_openat2(current(), name.c_str(), O_PATH | O_DIRECTORY, 0,
                           RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
      if (fd >= 0) {
        stack_.emplace_back(fd);
        return;
      }
      int err = errno;
      if (err == ELOOP || err == ENOTDIR) {
        if (follow_if_symlink(name)) return;
        fail_at(err, name);
      }
      if (err != ENOENT) fail_at(err, name);
      // Missing: create it here, under the fd we hold, then open what we created.
      if (::mkdirat(current(), name.c_str(), mode) < 0 && errno != EEXIST) {
        fail_at(errno, name);
      }
    }
    fail_at(EAGAIN, name);
  }

  std::optional<UniqueFd> step_file(const std::string& name, mode_t mode) {
    for (int attempt = 0; attempt < kMaxEagainRetries; ++attempt) {
      int fd = sys_openat2(current(), name.c_str(), O_PATH, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
      if (fd >= 0) return UniqueFd(fd);
      int err = errno;
      if (err == ELOOP) {
        if (follow_if_symlink(name)) return std::nullopt;
        fail_at(err, name);
      }
      if (err != ENOENT) fail_at(err, name);
      int created = ::openat(current(), name.c_str(),
                             O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
      if (created >= 0) {
        ::close(created);
      } else if (errno != EEXIST) {
        fail_at(errno, name);
      }
    }
    fail_at(EAGAIN, name);
  }

  int root_fd_;
  std::string path_;
  std::deque<std::string> todo_;
  std::vector<UniqueFd> stack_;
  int links_ = 0;
};

}  // namespace

std::string clean_path(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path.front() == '/';
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!rooted) {
        out.push_back(part);
      }
      continue;
    }
    out.push_back(part);
  }
  std::string result = rooted ? "/" : "";
  for (size_t i = 0; i < out.size(); ++i) {
    if (i > 0) result += '/';
    result += out[i];
  }
  if (result.empty()) return ".";
  return result;
}

UniqueFd open_in_root(int root_fd, std::string_view path, int flags, mode_t mode) {
  std::string rel = relative_to_root(path);
  int fd = sys_openat2(root_fd, rel.c_str(), flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (fd < 0) throw_errno(fmt::format("open {} inside rootfs", path));
  return UniqueFd(fd);
}

std::optional<UniqueFd> open_in_root_if_exists(int root_fd, std::string_view path, int flags) {
  std::string rel = relative_to_root(path);
  int fd = sys_openat2(root_fd, rel.c_str(), flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  if (fd >= 0) return UniqueFd(fd);
  if (errno == ENOENT) return std::nullopt;
  throw_errno(fmt::format("open {} inside rootfs", path));
}

UniqueFd mkdir_all_in_root(int root_fd, std::string_view path, mode_t mode) {
  return RootWalk(root_fd, path).run(Final::directory, mode);
}

UniqueFd create_file_in_root(int root_fd, std::string_view path, mode_t mode) {
  return RootWalk(root_fd, path).run(Final::file, mode);
}

std::string fd_path(int fd) {
  std::string link = proc_fd_path(fd);
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size());
    if (n < 0) throw_errno(fmt::format("readlink {}", link));
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

std::string proc_fd_path(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

}  // namespace deltabox
