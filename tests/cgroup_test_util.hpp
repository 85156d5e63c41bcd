#pragma once
// Helpers for cgroup tests: temporary fake cgroupfs trees, and live cgroups that only ever are
// "deltabox-test-*" children of this process's own cgroups, removed (with the children forked
// into them killed) when the test leaves scope, whatever happened.
#include <doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cgroups/manager.hpp"
#include "cgroups/paths.hpp"
#include "cgroups/probe.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace cgroup_test {

namespace fs = std::filesystem;
using namespace deltabox;
using namespace deltabox::cgroups;

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/deltabox-test-cg-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Creates (or replaces) a regular file, making its directory as needed.
inline void put(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}

inline std::string slurp(const std::string& path) { return read_file(path); }

inline bool live_available() {
  if (::geteuid() != 0) return false;
  try {
    return !probe_hierarchies().empty();
  } catch (const Error&) {
    return false;
  }
}

inline std::string test_cgroup_name() {
  static int counter = 0;
  return fmt::format("deltabox-test-res-{}-{}", ::getpid(), ++counter);
}

// doctest's crash handlers would make a child killed by the test report a crash and a summary.
inline void reset_signals() {
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
}

// A container cgroup below this process's own cgroups and the children forked into it.
struct LiveCgroup {
  std::unique_ptr<Manager> manager;
  std::vector<pid_t> children;

  // Every hierarchy this process is in, or only those `keep` accepts (e.g. only cgroup2).
  explicit LiveCgroup(const std::function<bool(const Hierarchy&)>& keep = {}) {
    std::vector<OwnHierarchy> mine;
    for (const auto& h : probe_hierarchies())
      if (!keep || keep(h.hierarchy)) mine.push_back(h);
    REQUIRE(!mine.empty());
    manager = Manager::for_hierarchies(mine, "", test_cgroup_name());
    for (const auto& p : manager->placements()) {
      auto own = std::find_if(mine.begin(), mine.end(), [&](const auto& h) { return h.hierarchy == p.hierarchy; });
      REQUIRE(own != mine.end());
      REQUIRE(is_strictly_below(p.path, normalize_cgroup_path(own->own_path)));
      REQUIRE(contains(p.path, "/deltabox-test-"));
    }
    manager->create();
  }
  ~LiveCgroup() {
    for (pid_t pid : children) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    try {
      manager->thaw();
    } catch (const std::exception&) {
    }
    try {
      manager->destroy();
    } catch (const std::exception& e) {
      MESSAGE("cleanup: " << e.what());
    }
  }
  LiveCgroup(const LiveCgroup&) = delete;
  LiveCgroup& operator=(const LiveCgroup&) = delete;

  // Forks a child running body (which must not return normally in the child); returns its pid.
  pid_t spawn(const std::function<void()>& body) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      reset_signals();
      try {
        body();
      } catch (...) {
      }
      ::_exit(111);
    }
    children.push_back(pid);
    return pid;
  }

  int reap(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    children.erase(std::remove(children.begin(), children.end(), pid), children.end());
    return status;
  }
};

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  ~Pipe() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  template <typename T>
  void send(const T& value) {
    (void)!::write(fds[1], &value, sizeof value);
  }
  template <typename T>
  T receive() {
    T value{};
    REQUIRE(::read(fds[0], &value, sizeof value) == static_cast<ssize_t>(sizeof value));
    return value;
  }
};

}  // namespace cgroup_test
