#include "criu/pids.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <sstream>
#include <string>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::criu {

namespace {

std::vector<pid_t> parse_pid_list(std::string_view text) {
  std::vector<pid_t> out;
  std::istringstream in{std::string(text)};
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

bool same_file(int fd, const struct stat& want) {
  struct stat st;
  return ::fstat(fd, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino;
}

// Is the pid namespace of `pid` (levels_below levels deeper than the target) inside target?
bool pidns_is_within(pid_t pid, int levels_below, const struct stat& target) {
  UniqueFd ns(::open(fmt::format("/proc/{}/ns/pid", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return false;
  for (int i = 0; i < levels_below; ++i) {
    UniqueFd parent(::ioctl(ns.get(), NS_GET_PARENT));
    if (!parent) return false;
    ns = std::move(parent);
  }
  return same_file(ns.get(), target);
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec == std::errc() && end == name.data() + name.size()) out.push_back(pid);
  }
  return out;
}

}  // namespace

std::vector<pid_t> ns_pids(pid_t pid) {
  std::string status;
  try {
    status = read_file(fmt::format("/proc/{}/status", pid));
  } catch (const Error&) {
    return {};
  }
  size_t at = status.find("\nNSpid:");
  if (at == std::string::npos) return {};
  at += 7;
  size_t end = status.find('\n', at);
  return parse_pid_list(std::string_view(status).substr(at, end - at));
}

pid_t child_with_ns_pid(pid_t parent, pid_t pid_in_parent_ns) {
  const size_t level = ns_pids(parent).size();  // index of the parent's own namespace, plus one
  if (level == 0) return 0;
  const std::string task_dir = fmt::format("/proc/{}/task", parent);
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(task_dir, ec)) {
    std::string children;
    try {
      children = read_file(task.path() / "children");
    } catch (const Error&) {
      continue;  // the thread exited
    }
    for (pid_t child : parse_pid_list(children)) {
      auto pids = ns_pids(child);
      if (pids.size() >= level && pids[level - 1] == pid_in_parent_ns) return child;
    }
  }
  return 0;
}

pid_t host_pid_of(pid_t pid_in_ns, pid_t ns_member) {
  const auto member = ns_pids(ns_member);
  if (member.empty()) fail("host_pid_of: no process {}", ns_member);
  const size_t level = member.size() - 1;
  struct stat target;
  if (::stat(fmt::format("/proc/{}/ns/pid", ns_member).c_str(), &target) < 0)
    throw_errno(fmt::format("stat /proc/{}/ns/pid", ns_member));
  for (pid_t pid : all_pids()) {
    auto pids = ns_pids(pid);
    if (pids.size() <= level || pids[level] != pid_in_ns) continue;
    if (pidns_is_within(pid, static_cast<int>(pids.size() - 1 - level), target)) return pid;
  }
  return 0;
}

UniqueFd pidfd_open(pid_t pid) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) throw_errno(fmt::format("pidfd_open {}", pid));
  return fd;
}

}  // namespace deltabox::criu
