#include "cgroups/wait.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace deltabox::cgroups {
namespace {

// poll() timeout until the deadline, rounded up so we never wake just before it.
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Reading from offset 0 each time also re-arms the fd's POLLPRI notification.
std::string pread_all(int fd, const std::string& path) {
  std::string out;
  char buf[4096];
  for (off_t off = 0;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(fmt::format("read {}", path));
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
}

UniqueFd open_events(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path));
  return fd;
}

// Checks done() (which also names processes worth watching) until it holds, sleeping between
// checks on POLLPRI of events_fd (when >= 0) and on the exit of the watched processes.
bool wait_until(const std::function<bool(std::vector<pid_t>& watch)>& done, int events_fd,
                Clock::time_point deadline) {
  for (;;) {
    std::vector<pid_t> watch;
    if (done(watch)) return true;
    if (Clock::now() >= deadline) return false;
    std::vector<UniqueFd> pidfds;
    std::vector<pollfd> polls;
    if (events_fd >= 0) polls.push_back({events_fd, POLLPRI, 0});
    for (pid_t pid : watch) {
      int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
      if (fd < 0) {
        if (errno == ESRCH) continue;  // already gone
        throw_errno(fmt::format("pidfd_open {}", pid));
      }
      pidfds.emplace_back(fd);
      polls.push_back({fd, POLLIN, 0});
    }
    if (polls.empty()) {
      // Listed yet already reaped: the kernel is about to drop it from the list.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    int rc = ::poll(polls.data(), polls.size(), remaining_ms(deadline));
    if (rc < 0 && errno != EINTR) throw_errno("poll");
    if (rc == 0) {
      watch.clear();
      return done(watch);
    }
  }
}

}  // namespace

std::optional<std::string> events_field(std::string_view content, std::string_view key) {
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    auto line = content.substr(pos, end - pos);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return std::string(line.substr(key.size() + 1));
    pos = end + 1;
  }
  return std::nullopt;
}

bool wait_events_field(const std::string& path, std::string_view key, std::string_view want,
                       Clock::time_point deadline, std::chrono::microseconds spin) {
  auto fd = open_events(path);
  auto reached = [&] { return events_field(pread_all(fd.get(), path), key) == want; };
  // Bounded spin: the state usually flips well before its rate-limited notification.
  for (auto spin_end = std::min(deadline, Clock::now() + spin); Clock::now() < spin_end; ::sched_yield())
    if (reached()) return true;
  return wait_until([&](std::vector<pid_t>&) { return reached(); }, fd.get(), deadline);
}

bool wait_unpopulated(const std::string& path, const std::function<std::vector<pid_t>()>& list,
                      Clock::time_point deadline) {
  auto fd = open_events(path);
  return wait_until(
      [&](std::vector<pid_t>& watch) {
        if (events_field(pread_all(fd.get(), path), "populated") == "0") return true;
        watch = list();
        return false;
      },
      fd.get(), deadline);
}

bool wait_pids_gone(const std::function<std::vector<pid_t>()>& list, Clock::time_point deadline) {
  return wait_until(
      [&](std::vector<pid_t>& watch) {
        watch = list();
        return watch.empty();
      },
      -1, deadline);
}

}  // namespace deltabox::cgroups
