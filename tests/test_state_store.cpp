// The state root: ids, the per-container lock, atomic state files.
#include <doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "container/container_state.hpp"
#include "state/store.hpp"
#include "util/error.hpp"

using namespace deltabox;

namespace {
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/deltabox-test-store-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};
}  // namespace

TEST_CASE("state store: container ids follow runc's rule") {
  for (const char* ok : {"a", "box-1", "x_y.z+w", "0"}) CHECK_NOTHROW(validate_container_id(ok));
  for (const char* bad : {"", ".", "..", "a/b", "a b", "../x", "é"})
    CHECK_THROWS_WITH_AS(validate_container_id(bad), "invalid container ID format", Error);
}

TEST_CASE("state store: create, save, load, list, remove") {
  TempDir tmp;
  StateStore store(tmp.path / "root");
  CHECK(store.ids().empty());
  {
    auto lock = store.create_dir("c1");
    CHECK(lock.held());
    store.save("c1", {{"hello", 1}});
  }
  CHECK_THROWS_WITH_AS(store.create_dir("c1"), "container with given ID already exists", Error);
  CHECK(store.load("c1")->at("hello") == 1);
  CHECK_FALSE(store.load("c2").has_value());
  store.create_dir("c2");
  CHECK(store.ids() == std::vector<std::string>{"c1", "c2"});
  store.remove_dir("c1");
  CHECK_THROWS_WITH_AS(store.lock("c1"), "container does not exist", Error);
  CHECK(store.ids() == std::vector<std::string>{"c2"});
}

TEST_CASE("state store: the root may not be /") {
  CHECK_THROWS_WITH_AS(StateStore("/"), "Option --root argument should not be set to /", Error);
}

TEST_CASE("state store: one container's lock serializes, another's does not block") {
  TempDir tmp;
  StateStore store(tmp.path);
  store.create_dir("a");
  store.create_dir("b");
  auto held = store.lock("a");
  pid_t child = ::fork();
  if (child == 0) {
    // In another process: "a" is busy, "b" is free.
    int rc = store.try_lock("a").held() ? 1 : 0;
    rc |= store.try_lock("b").held() ? 0 : 2;
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("state store: a container removed while waiting for its lock does not exist") {
  TempDir tmp;
  StateStore store(tmp.path);
  auto held = store.create_dir("gone");
  pid_t child = ::fork();
  if (child == 0) {
    held.release();  // the fork shares our lock's open file description: drop that copy
    try {
      store.lock("gone");
      ::_exit(1);
    } catch (const Error& e) {
      ::_exit(std::string(e.what()) == "container does not exist" ? 0 : 2);
    }
  }
  ::usleep(50 * 1000);
  store.remove_dir("gone");
  held.release();
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("container state: round trip, snapshot part included") {
  ContainerState s;
  s.id = "x";
  s.bundle = "/b";
  s.rootfs = "/b/rootfs";
  s.created = "2026-01-01T00:00:00Z";
  s.init_pid = 42;
  s.init_start_time = 7;
  s.config = {{"ociVersion", "1.2.0"}, {"annotations", {{"k", "v"}}}};
  s.cgroup = {{"version", 1}};
  s.criu = "/usr/local/sbin/criu";
  s.snapshots = SnapshotState{"/store", "3", 99, 11, {"/l1", "/rootfs"}, "s2", 5};
  auto back = ContainerState::from_json(s.to_json());
  CHECK(back.to_json() == s.to_json());
  CHECK(back.annotations() == std::map<std::string, std::string>{{"k", "v"}});
  CHECK(back.snapshots->layers == std::vector<std::string>{"/l1", "/rootfs"});
  CHECK_THROWS_AS(ContainerState::from_json({{"id", "x"}}), Error);
}

TEST_CASE("container state: times and process identity") {
  auto now = rfc3339_nano_now();
  CHECK(now.size() >= 20);
  CHECK(now.back() == 'Z');
  CHECK(now.find('T') == 10);
  // Trailing zeros of the fraction are dropped, as Go's RFC3339Nano does.
  auto dot = now.find('.');
  if (dot != std::string::npos) CHECK(now[now.size() - 2] != '0');
  CHECK(process_start_time(::getpid()) > 0);
  CHECK(same_process_alive(::getpid(), process_start_time(::getpid())));
  CHECK_FALSE(same_process_alive(::getpid(), process_start_time(::getpid()) + 1));
  CHECK(process_start_time(0x7ffffff0) == 0);
}
