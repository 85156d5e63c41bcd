// criu: request encoding checked at the wire level against CRIU's field numbers (a tiny
// protobuf walker below, independent of the generated code), response decoding, the log tail,
// and live tests against the installed CRIU (skipped with a message when it is missing).
#include <doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cgroups/wait.hpp"
#include "criu/channel.hpp"
#include "criu/client.hpp"
#include "criu/messages.hpp"
#include "criu/pids.hpp"
#include "criu/spawn.hpp"
#include "process/clone.hpp"
#include "util/file.hpp"

using namespace deltabox;
using namespace deltabox::criu;
namespace fs = std::filesystem;

namespace {

// ---- a minimal protobuf wire reader/writer: varints and length-delimited fields only ----

struct Field {
  uint64_t varint = 0;
  std::string bytes;
  bool is_bytes = false;
};
using Fields = std::multimap<uint32_t, Field>;

uint64_t read_varint(const std::string& in, size_t& at) {
  uint64_t value = 0;
  for (int shift = 0; at < in.size(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(in[at++]);
    value |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return value;
  }
  FAIL("truncated varint");
  return 0;
}

Fields parse(const std::string& in) {
  Fields out;
  size_t at = 0;
  while (at < in.size()) {
    uint64_t key = read_varint(in, at);
    Field f;
    switch (key & 7) {
      case 0: f.varint = read_varint(in, at); break;
      case 2: {
        size_t len = read_varint(in, at);
        f.bytes = in.substr(at, len);
        f.is_bytes = true;
        at += len;
        break;
      }
      default: FAIL("unexpected wire type " << (key & 7));
    }
    out.emplace(static_cast<uint32_t>(key >> 3), f);
  }
  return out;
}
Fields parse(const Bytes& b) { return parse(std::string(b.begin(), b.end())); }

const Field& one(const Fields& f, uint32_t number) {
  REQUIRE_MESSAGE(f.count(number) == 1, "field " << number);
  return f.find(number)->second;
}
std::vector<std::string> all_bytes(const Fields& f, uint32_t number) {
  std::vector<std::string> out;
  for (auto [it, end] = f.equal_range(number); it != end; ++it) out.push_back(it->second.bytes);
  return out;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_uint(std::string& out, uint32_t number, uint64_t v) {
  put_varint(out, number << 3);
  put_varint(out, v);
}
void put_bytes(std::string& out, uint32_t number, const std::string& v) {
  put_varint(out, (number << 3) | 2);
  put_varint(out, v.size());
  out += v;
}
std::vector<uint8_t> to_bytes(const std::string& s) { return {s.begin(), s.end()}; }

// CRIU's numbers (images/rpc.proto): criu_req.type=1 opts=2 notify_success=3 features=5.
Fields opts_of(const Bytes& request) { return parse(one(parse(request), 2).bytes); }

}  // namespace

TEST_CASE("criu: dump request carries CRIU's field numbers") {
  DumpOptions o;
  o.pid = 6;
  o.images_dir_fd = 7;
  o.work_dir_fd = 8;
  o.log_level = 4;
  o.root = "/run/g0/merged";
  o.freeze_cgroup = "/sys/fs/cgroup/unified/x";
  o.manage_cgroups_mode = CgroupMode::ignore;
  o.ext_mnt = {{"/dev/null", "dev-null"}};
  o.external = {"tty[88:5]"};
  o.ghost_limit = 0;
  o.tcp_established = true;
  Bytes req = encode_dump(o, RequestType::dump, false);

  auto top = parse(req);
  CHECK(one(top, 1).varint == 1);  // DUMP
  auto opts = opts_of(req);
  CHECK(one(opts, 1).varint == 7);   // images_dir_fd
  CHECK(one(opts, 2).varint == 6);   // pid
  CHECK(one(opts, 3).varint == 1);   // leave_running (default on)
  CHECK(one(opts, 5).varint == 1);   // tcp_established
  CHECK(one(opts, 9).varint == 4);   // log_level
  CHECK(one(opts, 10).bytes == "dump.log");
  CHECK(opts.count(12) == 0);        // notify_scripts off
  CHECK(one(opts, 13).bytes == "/run/g0/merged");
  CHECK(one(opts, 17).varint == 8);  // work_dir_fd
  auto mnt = parse(one(opts, 23).bytes);
  CHECK(one(mnt, 1).bytes == "/dev/null");
  CHECK(one(mnt, 2).bytes == "dev-null");
  CHECK(one(opts, 34).varint == 0);  // manage_cgroups_mode IGNORE, present
  CHECK(one(opts, 35).varint == 0);  // ghost_limit
  CHECK(all_bytes(opts, 37) == std::vector<std::string>{"tty[88:5]"});
  CHECK(one(opts, 44).bytes == "/sys/fs/cgroup/unified/x");
  CHECK(one(opts, 64).varint == 3);  // network_lock SKIP
  // Unset flags stay off the wire: CRIU's defaults apply.
  for (uint32_t n : {4u, 7u, 8u, 14u, 15u, 16u, 18u, 45u, 69u}) CHECK_MESSAGE(opts.count(n) == 0, n);
}

TEST_CASE("criu: pre-dump, notify and the network lock") {
  DumpOptions o;
  o.pid = 1;
  o.images_dir_fd = 3;
  o.skip_network_lock = false;
  o.leave_running = false;
  o.parent_img = "../prev";
  o.track_mem = true;
  Bytes req = encode_dump(o, RequestType::single_pre_dump, true);
  CHECK(one(parse(req), 1).varint == 13);
  auto opts = opts_of(req);
  CHECK(one(opts, 12).varint == 1);
  CHECK(one(opts, 14).bytes == "../prev");
  CHECK(one(opts, 15).varint == 1);
  CHECK(opts.count(3) == 0);
  CHECK(opts.count(64) == 0);  // iptables: CRIU's default
  CHECK(opts.count(17) == 0);  // no work dir: CRIU logs into the images dir
}

TEST_CASE("criu: restore request") {
  RestoreOptions o;
  o.images_dir_fd = 9;
  o.root = "/run/g1/merged";
  o.leave_stopped = true;
  o.shell_job = true;
  o.ext_mnt = {{"dev-null", "/dev/null"}, {"vol", "/data/vol"}};
  o.inherit_fd = {{"pipe:[123]", 11}};
  o.orphan_pts_master = true;
  o.lsm_profile = "apparmor:x";
  o.manage_cgroups_mode = CgroupMode::soft;
  Bytes req = encode_restore(o, true);
  CHECK(one(parse(req), 1).varint == 2);  // RESTORE
  auto opts = opts_of(req);
  CHECK(one(opts, 1).varint == 9);
  CHECK(opts.count(2) == 0);
  CHECK(one(opts, 7).varint == 1);   // shell_job
  CHECK(one(opts, 10).bytes == "restore.log");
  CHECK(one(opts, 12).varint == 1);  // notify_scripts
  CHECK(one(opts, 13).bytes == "/run/g1/merged");
  auto mnts = all_bytes(opts, 23);
  REQUIRE(mnts.size() == 2);
  CHECK(one(parse(mnts[1]), 1).bytes == "vol");
  CHECK(one(parse(mnts[1]), 2).bytes == "/data/vol");
  auto inherit = parse(one(opts, 27).bytes);
  CHECK(one(inherit, 1).bytes == "pipe:[123]");
  CHECK(one(inherit, 2).varint == 11);
  CHECK(one(opts, 34).varint == 3);  // SOFT
  CHECK(one(opts, 50).varint == 1);  // orphan_pts_master
  CHECK(one(opts, 53).bytes == "apparmor:x");
  CHECK(one(opts, 69).varint == 1);  // leave_stopped
  CHECK(opts.count(3) == 0);
}

TEST_CASE("criu: requests need an images dir and a pid") {
  DumpOptions d;
  d.images_dir_fd = 3;
  CHECK_THROWS_AS(encode_dump(d, RequestType::dump, false), Error);
  d.pid = 5;
  d.images_dir_fd = -1;
  CHECK_THROWS_AS(encode_dump(d, RequestType::dump, false), Error);
  CHECK_THROWS_AS(encode_restore(RestoreOptions{}, false), Error);
}

TEST_CASE("criu: simple requests and notify answers") {
  CHECK(parse(encode_simple(RequestType::version)).count(2) == 0);
  CHECK(one(parse(encode_simple(RequestType::version)), 1).varint == 10);
  auto feat = parse(encode_feature_check_mem_track());
  CHECK(one(feat, 1).varint == 9);
  CHECK(one(parse(one(feat, 5).bytes), 1).varint == 1);
  auto ack = parse(encode_notify_answer(true));
  CHECK(one(ack, 1).varint == 6);
  CHECK(one(ack, 3).varint == 1);
  CHECK(one(parse(encode_notify_answer(false)), 3).varint == 0);
}

TEST_CASE("criu: responses decode") {
  SUBCASE("restore") {
    std::string restore, resp;
    put_uint(restore, 1, 42);
    put_uint(resp, 1, 2);
    put_uint(resp, 2, 1);
    put_bytes(resp, 4, restore);
    Response r = decode_response(to_bytes(resp));
    CHECK(r.type == RequestType::restore);
    CHECK(r.success);
    CHECK(r.restored_pid == 42);
  }
  SUBCASE("notify with pid") {
    std::string notify, resp;
    put_bytes(notify, 1, "setup-namespaces");
    put_uint(notify, 2, 17);
    put_uint(resp, 1, 6);
    put_uint(resp, 2, 1);
    put_bytes(resp, 5, notify);
    Response r = decode_response(to_bytes(resp));
    REQUIRE(r.notify);
    CHECK(r.notify->script == "setup-namespaces");
    CHECK(r.notify->pid == 17);
  }
  SUBCASE("failure with errno, message and an unknown field") {
    std::string resp;
    put_uint(resp, 1, 1);
    put_uint(resp, 2, 0);
    put_uint(resp, 7, 2);
    put_bytes(resp, 9, "Dumping FAILED");
    put_uint(resp, 11, 5);  // criu_resp.status: not in our subset, skipped
    Response r = decode_response(to_bytes(resp));
    CHECK_FALSE(r.success);
    CHECK(r.cr_errno == 2);
    CHECK(r.cr_errmsg == "Dumping FAILED");
  }
  SUBCASE("version and features") {
    std::string version, features, resp;
    put_uint(version, 1, 4);
    put_uint(version, 2, 1);
    put_uint(version, 4, 1);
    put_uint(features, 1, 0);
    put_uint(resp, 1, 10);
    put_uint(resp, 2, 1);
    put_bytes(resp, 8, features);
    put_bytes(resp, 10, version);
    Response r = decode_response(to_bytes(resp));
    REQUIRE(r.version);
    CHECK(r.version->to_string() == "4.1.1");
    CHECK(r.mem_track == false);
  }
  SUBCASE("garbage") {
    CHECK_THROWS_AS(decode_response(to_bytes("\xff\xff\xff")), Error);
    std::string missing_success;
    put_uint(missing_success, 1, 1);
    CHECK_THROWS_AS(decode_response(to_bytes(missing_success)), Error);  // required field
  }
}

TEST_CASE("criu: log tail keeps the last error lines") {
  char tmpl[] = "/tmp/deltabox-test-criu-log-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  fs::path dir = tmpl;
  UniqueFd dirfd(::open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::string log;
  for (int i = 0; i < 30; ++i) log += fmt::format("(00.0{:02}) info line {}\n", i, i);
  log += "(00.100) Error (criu/mount.c:753): mnt: 186:./dev/null doesn't have a proper root mount\n";
  log += "(00.101) Error (criu/cr-dump.c:2111): Dumping FAILED.\n";
  log += "(00.102) Warn  trailing\n";
  write_file_atomic(dir / "dump.log", log);
  CHECK(log_tail(dirfd.get(), "dump.log") ==
        "(00.100) Error (criu/mount.c:753): mnt: 186:./dev/null doesn't have a proper root mount\n"
        "(00.101) Error (criu/cr-dump.c:2111): Dumping FAILED.");
  CHECK(log_tail(dirfd.get(), "dump.log", 1) == "(00.101) Error (criu/cr-dump.c:2111): Dumping FAILED.");
  write_file_atomic(dir / "quiet.log", "a\nb\nc\n");
  CHECK(log_tail(dirfd.get(), "quiet.log", 2) == "b\nc");
  CHECK(log_tail(dirfd.get(), "missing.log") == "");
  CriuError e("criu dump of pid 6 failed", 0, "Error (x): y");
  CHECK(std::string(e.what()) == "criu dump of pid 6 failed\nError (x): y");
  fs::remove_all(dir);
}

TEST_CASE("criu: spawn failures are reported, not hung on") {
  SUBCASE("missing binary") {
    CHECK_THROWS_AS(SwrkProcess::start(SpawnOptions{.criu_path = "/nonexistent/criu"}, {}), Error);
    CHECK_THROWS_AS(SwrkProcess::start(SpawnOptions{.criu_path = "deltabox-no-such-criu"}, {}), Error);
  }
  SUBCASE("exec fails in the child") {
    char tmpl[] = "/tmp/deltabox-test-criu-exec-XXXXXX";
    int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);  // not executable
    try {
      SwrkProcess::start(SpawnOptions{.criu_path = tmpl}, {});
      FAIL("spawned a non-executable");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("criu spawn: exec") == 0);
      CHECK(e.code() == EACCES);
    }
    ::unlink(tmpl);
  }
  SUBCASE("a pid namespace without its mount namespace") {
    const SpawnOptions pid_only{.criu_path = "/bin/true", .ns_pidfd = 0, .ns_flags = CLONE_NEWPID};
    CHECK_THROWS_AS(SwrkProcess::start(pid_only, {}), Error);
    CHECK_THROWS_AS(SwrkProcess::start(SpawnOptions{.criu_path = "/bin/true", .ns_flags = CLONE_NEWNS}, {}), Error);
  }
  SUBCASE("a program that is not CRIU: EOF instead of an answer") {
    SwrkProcess p = SwrkProcess::start(SpawnOptions{.criu_path = "/bin/true"}, {});
    CHECK(p.pid() > 0);
    CHECK_FALSE(recv_packet(p.socket()).has_value());
    int status = p.finish();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}

TEST_CASE("criu: runs without hardware breakpoints unless told otherwise") {
  char a[] = "PATH=/bin", b[] = "HOME=/root";
  char* plain[] = {a, b, nullptr};
  CHECK(criu_environment(plain) == std::vector<std::string>{"PATH=/bin", "HOME=/root", "CRIU_FAULT=130"});
  char f[] = "CRIU_FAULT=4";
  char* chosen[] = {a, f, nullptr};
  CHECK(criu_environment(chosen) == std::vector<std::string>{"PATH=/bin", "CRIU_FAULT=4"});
  CHECK(criu_environment(nullptr) == std::vector<std::string>{"CRIU_FAULT=130"});
}

TEST_CASE("criu: pids across namespaces, in our own namespace") {
  const pid_t self = ::getpid();
  auto ns = ns_pids(self);
  REQUIRE(!ns.empty());
  CHECK(ns.front() == self);
  CHECK(host_pid_of(ns.front(), self) == self);
  CHECK(ns_pids(0x3ffffff).empty());
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  CHECK(child_with_ns_pid(self, child) == child);
  CHECK(child_with_ns_pid(self, 0x3ffffff) == 0);
  UniqueFd pidfd = pidfd_open(child);
  CHECK(pidfd.valid());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

// ---------------------------------------------------------------------------------------------
// Live: the production topology. An anchor A is pid 1 of a new pid namespace with a private
// mount namespace; a generation G (A's child, its own pid + mount namespaces, an overlay root,
// pivot_root) runs a small shell workload. The test freezes G's cgroup, dumps G with CRIU
// spawned into A's namespaces, then restores the images twice, stopped, each copy into a fresh
// overlay and cgroup, and wakes one copy. Everything runs below /dev/shm/deltabox-test-criu-*,
// in cgroups deltabox-test-criu-* below our own, and dies with A.
// ---------------------------------------------------------------------------------------------
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string find_criu() {
  if (::access("/usr/local/sbin/criu", X_OK) == 0) return "/usr/local/sbin/criu";
  for (const char* dir : {"/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin"}) {
    std::string p = std::string(dir) + "/criu";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// Our own cgroup in a hierarchy: the path after "<id>:<controllers>:" in /proc/self/cgroup.
std::string own_cgroup(const std::string& controllers) {
  std::istringstream in(read_file("/proc/self/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':'), second = line.find(':', first + 1);
    if (line.substr(first + 1, second - first - 1) == controllers) return line.substr(second + 1);
  }
  return "";
}

std::string unified_root() {
  if (::access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0) return "/sys/fs/cgroup/unified";
  if (::access("/sys/fs/cgroup/cgroup.freeze", F_OK) == 0 || ::access("/sys/fs/cgroup/cgroup.procs", F_OK) == 0)
    return "/sys/fs/cgroup";
  return "";
}

// A cgroup we made (deltabox-test-criu-*, below our own): thawed, emptied and removed on scope exit.
struct TestCgroup {
  std::string path;
  bool v2 = true;
  UniqueFd fd;
  TestCgroup(const std::string& root, const std::string& own, const std::string& name, bool is_v2) : v2(is_v2) {
    path = root + (own == "/" ? "" : own) + "/deltabox-test-criu-" + std::to_string(::getpid()) + "-" + name;
    REQUIRE_MESSAGE(::mkdir(path.c_str(), 0755) == 0, path << ": " << std::strerror(errno));
    fd.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
  }
  ~TestCgroup() {
    fd.reset();
    if (v2) {
      try {
        write_file(path + "/cgroup.freeze", "0");
      } catch (const std::exception&) {
      }
    }
    for (int i = 0; i < 200 && ::rmdir(path.c_str()) != 0; ++i) std::this_thread::sleep_for(10ms);
    if (::access(path.c_str(), F_OK) == 0) MESSAGE("cleanup: could not remove " << path);
  }
  void freeze() {
    write_file(path + "/cgroup.freeze", "1");
    REQUIRE(cgroups::wait_events_field(path + "/cgroup.events", "frozen", "1", Clock::now() + 5s));
  }
  void thaw() { write_file(path + "/cgroup.freeze", "0"); }
};

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/dev/shm/deltabox-test-criu-XXXXXX";  // tmpfs: images and overlay layers
    REQUIRE(::mkdtemp(tmpl));
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) MESSAGE("cleanup: " << path << ": " << ec.message());
  }
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "test child: %s: %s\n", what, std::strerror(errno));
  ::_exit(1);
}

// What the generation runs: a counter written to a file kept open with an offset (in the
// overlay; not O_APPEND, so CRIU also checks its size on restore), to a tmpfs file and to stdout
// (a pipe from outside, like a shim's), and a pipe between two processes holding unread data.
const char* kWorkload =
    "i=0; exec 3>/data/log; "
    "yes | while read l; do sleep 1; done & "
    "while true; do i=$((i+1)); echo $i >&3; echo $i > /tmp/counter; echo $i; sleep 0.01; done";

struct Layout {
  fs::path lower, g0, images, snap;
  fs::path layer(const std::string& name) const { return lower.parent_path() / name; }
};

void make_rootfs(const fs::path& lower) {
  for (const char* d : {"bin", "proc", "dev", "tmp", "data"}) fs::create_directories(lower / d);
  fs::copy_file("/bin/busybox", lower / "bin/busybox");
  for (const char* applet : {"sh", "yes", "sleep", "echo", "cat"})
    fs::create_symlink("busybox", lower / "bin" / applet);
}

void make_overlay_dirs(const fs::path& dir) {
  for (const char* d : {"upper", "work", "merged"}) fs::create_directories(dir / d);
}

std::string overlay_options(const std::string& lowers, const fs::path& dir) {
  return "lowerdir=" + lowers + ",upperdir=" + (dir / "upper").string() + ",workdir=" + (dir / "work").string();
}

// The generation's init: its root is an overlay, pivot_root'ed, with /proc, a tmpfs /dev holding
// a bind of the host's /dev/null, and a tmpfs /tmp. Runs in a fresh pid + mount namespace.
[[noreturn]] void generation_main(const std::string& lower, const fs::path& dir, int stdout_fd) {
  const std::string merged = (dir / "merged").string();
  const std::string opts = overlay_options(lower, dir);
  if (::mount("overlay", merged.c_str(), "overlay", 0, opts.c_str()) < 0) die("mount overlay");
  if (::mount(merged.c_str(), merged.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) die("bind root");
  if (::chdir(merged.c_str()) < 0) die("chdir");
  if (::mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) die("mount proc");
  if (::mount("tmpfs", "dev", "tmpfs", MS_NOSUID, "mode=755") < 0) die("mount dev");
  UniqueFd null_file(::open("dev/null", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
  if (::mount("/dev/null", "dev/null", nullptr, MS_BIND, nullptr) < 0) die("bind /dev/null");
  if (::mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) die("mount tmp");
  if (::syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
  if (::umount2(".", MNT_DETACH) < 0) die("umount old root");
  if (::chdir("/") < 0) die("chdir /");
  // CRIU wants the session and process group of the tree inside the tree (or shell_job).
  if (::setsid() < 0) die("setsid");
  int null_fd = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(fd == 1 ? stdout_fd : null_fd, fd);
  ::execl("/bin/sh", "sh", "-c", kWorkload, nullptr);
  die("exec sh");
}

// The anchor: pid 1 of a new pid namespace, private mounts, its own /proc. It starts the
// generation into gen_cgroup, reports the generation's pid (in A's namespace), then reaps.
[[noreturn]] void anchor_main(int report_fd, int gen_cgroup_fd, const std::string& lower, const fs::path& g0,
                              int gen_stdout) {
  reset_signals_in_child();
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) die("make / private");
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) die("mount /proc");
  // CRIU caches its kernel probes in /run/criu.kdat, but only on a tmpfs (saves ~30 ms a run).
  if (::getenv("DELTABOX_CRIU_TEST_NO_RUN_TMPFS") == nullptr &&
      ::mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755") < 0)
    die("mount /run");
  // A SIGCHLD handler so that sigsuspend wakes for reparented orphans too.
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  ::sigaction(SIGCHLD, &sa, nullptr);
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, &old);
  pid_t gen = clone_process(CLONE_NEWPID | CLONE_NEWNS, gen_cgroup_fd);
  if (gen == 0) {
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    generation_main(lower, g0, gen_stdout);
  }
  if (::write(report_fd, &gen, sizeof gen) != sizeof gen) die("report");
  ::close(report_fd);
  for (;;) {
    while (::waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
    }
    ::sigsuspend(&old);
  }
}

struct Anchor {
  pid_t pid = -1;       // host pid
  pid_t gen_ns_pid = 0;  // G as seen in A's pid namespace
  UniqueFd pidfd;
  Anchor(int gen_cgroup_fd, const std::string& lower, const fs::path& g0, int gen_stdout) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    UniqueFd in(p[0]), out(p[1]);
    pid = clone_process(CLONE_NEWPID | CLONE_NEWNS);
    if (pid == 0) anchor_main(out.get(), gen_cgroup_fd, lower, g0, gen_stdout);
    out.reset();
    pidfd = pidfd_open(pid);
    REQUIRE(::read(in.get(), &gen_ns_pid, sizeof gen_ns_pid) == sizeof gen_ns_pid);
  }
  ~Anchor() {
    // Killing a pid namespace's init kills everything in it and in the namespaces below it.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

// Runs body in a child that joined A's mount namespace (mounts made there stay private to it).
void in_mount_ns(int ns_pidfd, const std::function<void()>& body) {
  pid_t child = clone_process(0);
  if (child == 0) {
    if (::setns(ns_pidfd, CLONE_NEWNS) < 0) die("setns");
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "test child: %s\n", e.what());
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

void mount_overlay(const std::string& lowers, const fs::path& dir) {
  const std::string merged = (dir / "merged").string();
  if (::mount("overlay", merged.c_str(), "overlay", 0, overlay_options(lowers, dir).c_str()) < 0)
    throw Error("mount overlay " + merged, errno);
}

// A copy's root and /dev, mounted in A's mount namespace: an overlay of the snapshot over the
// image with a fresh upper, and a fresh tmpfs for the external /dev (with the file the host's
// /dev/null gets bound onto).
void mount_copy_root(int anchor_pidfd, const std::string& lowers, const fs::path& dir) {
  make_overlay_dirs(dir);
  const fs::path dev = dir / "dev";
  fs::create_directories(dev);
  in_mount_ns(anchor_pidfd, [&] {
    mount_overlay(lowers, dir);
    if (::mount("tmpfs", dev.c_str(), "tmpfs", MS_NOSUID, "mode=755") < 0) throw Error("mount dev", errno);
    UniqueFd null_file(::open((dev / "null").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
  });
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::ifstream in(task.path() / "children");
    pid_t child;
    while (in >> child) out.push_back(child);
  }
  return out;
}

std::vector<pid_t> tree_of(pid_t root) {
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size(); ++i)
    for (pid_t c : children_of(out[i])) out.push_back(c);
  return out;
}

char state_of(pid_t pid) {
  std::error_code ec;
  std::string status;
  try {
    status = read_file(fmt::format("/proc/{}/status", pid));
  } catch (const Error&) {
    return '?';
  }
  auto at = status.find("State:");
  return at == std::string::npos ? '?' : status[status.find_first_not_of(" \t", at + 6)];
}

// CRIU queues SIGSTOP while the restored tasks are still ptrace-stopped and then detaches: they
// stop on their way back to user mode, before running any instruction, but /proc shows them
// "R" for that moment. Returns how long until every task of the tree read "T".
std::optional<double> wait_stopped(pid_t root) {
  const auto start = Clock::now();
  while (Clock::now() - start < 2s) {
    const auto tree = tree_of(root);
    if (std::all_of(tree.begin(), tree.end(), [](pid_t p) { return state_of(p) == 'T'; })) return ms_since(start);
    std::this_thread::sleep_for(100us);
  }
  return std::nullopt;
}

pid_t ppid_of(pid_t pid) {
  std::string status = read_file(fmt::format("/proc/{}/status", pid));
  return static_cast<pid_t>(std::stol(status.substr(status.find("PPid:") + 5)));
}

std::set<pid_t> inner_pids(const std::vector<pid_t>& tree) {
  std::set<pid_t> out;
  for (pid_t p : tree) {
    auto ns = ns_pids(p);
    if (!ns.empty()) out.insert(ns.back());
  }
  return out;
}

std::string ns_id(pid_t pid, const char* ns) {
  return fs::read_symlink(fmt::format("/proc/{}/ns/{}", pid, ns)).string();
}

struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    read.reset(p[0]);
    write.reset(p[1]);
  }
  // CRIU names a pipe "pipe:[<inode>]"; inherit_fd swaps it for ours on restore.
  std::string key() const {
    struct stat st;
    REQUIRE(::fstat(read.get(), &st) == 0);
    return fmt::format("pipe:[{}]", st.st_ino);
  }
  // Numbers written so far (reads what is buffered, waiting up to `wait` for the first bytes).
  std::vector<long> numbers(std::chrono::milliseconds wait) {
    pollfd p{read.get(), POLLIN, 0};
    std::string text;
    if (::poll(&p, 1, static_cast<int>(wait.count())) > 0) {
      char buf[65536];
      ::fcntl(read.get(), F_SETFL, O_NONBLOCK);
      ssize_t n;
      while ((n = ::read(read.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    }
    std::istringstream in(text);
    std::vector<long> out;
    long v;
    while (in >> v) out.push_back(v);
    return out;
  }
};

// The counter values in a task's /data/log (through its root, from our mount namespace).
std::vector<long> counter_log(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/root/data/log", pid));
  std::vector<long> out;
  long v;
  while (in >> v) out.push_back(v);
  return out;
}

bool consecutive_from_one(const std::vector<long>& values) {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] != static_cast<long>(i) + 1) return false;
  return true;
}

}  // namespace

TEST_CASE("criu: live: swrk runs with CRIU_FAULT=130") {
  const std::string criu = find_criu();
  if (criu.empty()) {
    MESSAGE("skipped: no criu binary");
    return;
  }
  const char* saved = std::getenv("CRIU_FAULT");
  const std::string restore = saved ? saved : "";
  ::unsetenv("CRIU_FAULT");
  SwrkProcess p = SwrkProcess::start(SpawnOptions{.criu_path = criu}, {});
  if (saved) ::setenv("CRIU_FAULT", restore.c_str(), 1);
  // swrk waits for its first request: its environment can be read meanwhile
  const std::string env = read_file(fmt::format("/proc/{}/environ", p.pid()));
  CHECK(env.find(std::string("CRIU_FAULT=130\0", 15)) != std::string::npos);
  p.finish();
}

TEST_CASE("criu: live: version, features, and a failed dump's log tail") {
  const std::string criu = find_criu();
  if (criu.empty() || ::geteuid() != 0) {
    MESSAGE("skipped: no criu binary or not root");
    return;
  }
  Client client(SpawnOptions{.criu_path = criu});
  try {
    client.check();
  } catch (const std::exception& e) {
    MESSAGE("skipped: criu check failed: " << std::string(e.what()));
    return;
  }
  std::string version = client.version();
  MESSAGE("criu version " << version);
  CHECK(!version.empty());
  CHECK(std::isdigit(static_cast<unsigned char>(version[0])));
  MESSAGE("memory tracking: " << client.memory_tracking_supported());

  TempDir tmp;
  UniqueFd images(::open(tmp.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DumpOptions o;
  o.pid = 0x3ffffff;  // no such process
  o.images_dir_fd = images.get();
  try {
    client.dump(o);
    FAIL("dump of a missing pid succeeded");
  } catch (const CriuError& e) {
    MESSAGE(std::string(e.what()));
    CHECK(e.log_tail().find("Error (") != std::string::npos);
  }
}

TEST_CASE("criu: live: a generation dumped in its anchor's namespaces restores twice as stopped templates") {
  const std::string criu = find_criu();
  const std::string v2_root = unified_root();
  const std::string v2_own = own_cgroup("");
  const std::string pids_own = own_cgroup("pids");
  if (criu.empty() || ::geteuid() != 0 || v2_root.empty() || ::access("/bin/busybox", X_OK) != 0) {
    MESSAGE("skipped: needs root, criu, a cgroup2 mount and /bin/busybox");
    return;
  }
  try {
    Client(SpawnOptions{.criu_path = criu}).check();
  } catch (const std::exception& e) {
    MESSAGE("skipped: criu check failed: " << std::string(e.what()));
    return;
  }

  // DELTABOX_CRIU_TEST_LOGS=<dir>: verbose CRIU logs, copied there at the end.
  const char* logs_out = std::getenv("DELTABOX_CRIU_TEST_LOGS");
  const int log_level = logs_out ? 4 : 2;
  TempDir tmp;
  Layout l{tmp.path / "lower", tmp.path / "g0", tmp.path / "images", tmp.path / "snap"};
  make_rootfs(l.lower);
  make_overlay_dirs(l.g0);
  fs::create_directories(l.images);

  // Declared before the anchor: destroyed after it, once its processes (and the copies, in
  // pid namespaces below it) are dead.
  struct Copy {
    std::unique_ptr<TestCgroup> cg, v1;
    RestoreResult result;
    double ms = 0;
  };
  std::vector<Copy> copies(2);
  std::vector<Pipe> copy_out(2);
  TestCgroup gen_cg(v2_root, v2_own, "g0", true);
  Pipe gen_out;
  Anchor anchor(gen_cg.fd.get(), l.lower.string(), l.g0, gen_out.write.get());
  gen_out.write.reset();
  const pid_t gen = host_pid_of(anchor.gen_ns_pid, anchor.pid);
  REQUIRE(gen > 0);
  CHECK(ns_pids(gen) == std::vector<pid_t>{gen, anchor.gen_ns_pid, 1});
  // Let the workload get going.
  for (int i = 0; i < 500 && counter_log(gen).size() < 20; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(counter_log(gen).size() >= 20);

  // ---- dump, frozen by us first so CRIU's freezer check passes at once ----
  auto t = Clock::now();
  gen_cg.freeze();
  const double freeze_ms = ms_since(t);
  const auto frozen_tree = tree_of(gen);
  const std::set<pid_t> frozen_inner = inner_pids(frozen_tree);
  const std::vector<long> at_dump = counter_log(gen);
  REQUIRE(!at_dump.empty());
  CHECK(frozen_tree.size() >= 3);  // sh, yes, the reader (and maybe a sleep)

  const SpawnOptions into_anchor{
      .criu_path = criu, .ns_pidfd = anchor.pidfd.get(), .ns_flags = CLONE_NEWPID | CLONE_NEWNS};
  Client in_anchor(into_anchor);
  UniqueFd images(::open(l.images.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DumpOptions dump;
  dump.pid = anchor.gen_ns_pid;
  dump.images_dir_fd = images.get();
  dump.leave_running = true;
  dump.root = (l.g0 / "merged").string();  // ignored by CRIU on dump; harmless
  dump.freeze_cgroup = gen_cg.path;
  dump.manage_cgroups_mode = CgroupMode::ignore;
  // /dev is the runtime's static tmpfs: external, so CRIU neither tars it on dump nor untars it on
  // restore (3 ms each when idle, 15-25 under load); the restore gets a fresh one. /dev/null is a
  // bind from the host.
  dump.ext_mnt = {{"/dev", "dev"}, {"/dev/null", "dev-null"}};
  dump.log_level = log_level;
  // The anchor's first CRIU run probes the kernel and fills the kdat cache on A's /run tmpfs;
  // later runs (the ones the runtime cares about) load it. Dump once cold, then for real.
  fs::create_directories(l.layer("images-cold"));
  UniqueFd cold_images(::open(l.layer("images-cold").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DumpOptions cold = dump;
  cold.images_dir_fd = cold_images.get();
  t = Clock::now();
  in_anchor.dump(cold);
  const double cold_dump_ms = ms_since(t);
  t = Clock::now();
  in_anchor.dump(dump);
  const double dump_ms = ms_since(t);
  // The filesystem half of the snapshot, taken while the tree is still frozen.
  fs::copy(l.g0 / "upper", l.snap, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  CHECK(read_file(gen_cg.path + "/cgroup.events").find("frozen 1") != std::string::npos);
  gen_cg.thaw();

  // ---- restore twice, stopped, each into its own overlay and cgroups ----
  const std::string lowers = l.snap.string() + ":" + l.lower.string();
  for (size_t i = 0; i < copies.size(); ++i) {
    const std::string name = "r" + std::to_string(i + 1);
    const fs::path dir = l.layer(name), work = l.layer(name + "-work");
    fs::create_directories(work);
    mount_copy_root(anchor.pidfd.get(), lowers, dir);
    Copy& c = copies[i];
    c.cg = std::make_unique<TestCgroup>(v2_root, v2_own, name, true);
    SpawnOptions spawn = into_anchor;
    spawn.cgroup2_fd = c.cg->fd.get();  // the copy lives in the cgroups CRIU ran in
    if (!pids_own.empty() && ::access("/sys/fs/cgroup/pids/tasks", F_OK) == 0) {
      c.v1 = std::make_unique<TestCgroup>("/sys/fs/cgroup/pids", pids_own, name, false);
      spawn.cgroup_v1_dirs = {c.v1->path};
    }
    UniqueFd work_fd(::open(work.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    RestoreOptions restore;
    restore.images_dir_fd = images.get();
    restore.work_dir_fd = work_fd.get();
    restore.root = (dir / "merged").string();
    restore.leave_stopped = true;
    restore.manage_cgroups_mode = CgroupMode::ignore;
    restore.ext_mnt = {{"dev", (dir / "dev").string()}, {"dev-null", "/dev/null"}};
    restore.log_level = log_level;
    // The copy's stdout: the generation's pipe, replaced by a fresh one of ours.
    restore.inherit_fd = {{gen_out.key(), copy_out[i].write.get()}};
    std::vector<std::string> scripts;
    restore.notify = [&](Notification& n) { scripts.push_back(n.script); };
    t = Clock::now();
    c.result = Client(spawn).restore(restore);
    c.ms = ms_since(t);
    copy_out[i].write.reset();  // the copy holds the only write end now
    MESSAGE("restore " << name << ": pid " << c.result.pid << " (host " << c.result.host_pid << "), notifications: "
                       << fmt::format("{}", fmt::join(scripts, " ")));
  }

  // ---- what the runtime relies on ----
  for (auto& c : copies) {
    const pid_t root = c.result.host_pid;
    REQUIRE(root > 0);
    CHECK(c.result.pidfd.valid());
    CHECK(host_pid_of(c.result.pid, anchor.pid) == root);
    CHECK(ppid_of(root) == anchor.pid);  // reparented to the anchor once CRIU exited
    auto ns = ns_pids(root);
    CHECK(ns == std::vector<pid_t>{root, c.result.pid, 1});  // init of its own pid namespace
    CHECK(ns_id(root, "pid") != ns_id(gen, "pid"));
    CHECK(ns_id(root, "mnt") != ns_id(gen, "mnt"));
    const auto stopped_after = wait_stopped(root);
    CHECK_MESSAGE(stopped_after, "restored tasks never all stopped");
    if (stopped_after)
      MESSAGE(fmt::format("all restored tasks read T {:.2f} ms after restore returned", *stopped_after));
    const auto tree = tree_of(root);
    CHECK(inner_pids(tree) == frozen_inner);  // the same pids inside, as in the dumped tree
    const std::string cgroup = read_file(fmt::format("/proc/{}/cgroup", root));
    CHECK(cgroup.find("0::" + c.cg->path.substr(v2_root.size()) + "\n") != std::string::npos);
    if (c.v1) CHECK(cgroup.find(":pids:" + c.v1->path.substr(std::string("/sys/fs/cgroup/pids").size()) + "\n") !=
                    std::string::npos);
    CHECK(counter_log(root) == at_dump);  // the snapshot's file, untouched while stopped
    // The tmpfs /tmp came back with its content; /dev is the fresh one, with the host's null.
    CHECK(std::stol(read_file(fmt::format("/proc/{}/root/tmp/counter", root))) == at_dump.back());
    struct stat null_st;
    CHECK(::stat(fmt::format("/proc/{}/root/dev/null", root).c_str(), &null_st) == 0);
    CHECK(S_ISCHR(null_st.st_mode));
  }

  // ---- activate copy 1: it continues from the dumped counter, copy 2 stays put ----
  t = Clock::now();
  for (pid_t p : tree_of(copies[0].result.host_pid)) ::kill(p, SIGCONT);
  const double activate_ms = ms_since(t);
  const long dumped = at_dump.back();
  for (int i = 0; i < 300 && counter_log(copies[0].result.host_pid).size() < at_dump.size() + 10; ++i)
    std::this_thread::sleep_for(10ms);
  const auto resumed = counter_log(copies[0].result.host_pid);
  CHECK(resumed.size() >= at_dump.size() + 10);
  CHECK(consecutive_from_one(resumed));  // 1..dumped from the snapshot, then dumped+1, ...
  CHECK(std::equal(at_dump.begin(), at_dump.end(), resumed.begin()));
  CHECK(std::stol(read_file(fmt::format("/proc/{}/root/tmp/counter", copies[0].result.host_pid))) > dumped);
  CHECK(counter_log(copies[1].result.host_pid) == at_dump);
  // Its stdout reaches our fresh pipe, continuing from the snapshot; the stopped copy wrote nothing.
  const auto printed = copy_out[0].numbers(1000ms);
  REQUIRE(!printed.empty());
  CHECK(printed.front() >= dumped);
  CHECK(printed.front() <= dumped + 1);
  CHECK(printed.back() - printed.front() + 1 == static_cast<long>(printed.size()));
  CHECK(copy_out[1].numbers(0ms).empty());
  CHECK(fs::read_symlink(fmt::format("/proc/{}/fd/1", copies[0].result.host_pid)).string() == copy_out[0].key());
  for (pid_t p : tree_of(copies[1].result.host_pid)) CHECK(state_of(p) == 'T');
  const auto original = counter_log(gen);
  CHECK(original.size() > at_dump.size());  // the original kept running
  CHECK(consecutive_from_one(original));

  if (logs_out) {
    fs::create_directories(logs_out);
    fs::copy_file(l.images / "dump.log", fs::path(logs_out) / "dump.log", fs::copy_options::overwrite_existing);
    for (const char* r : {"r1", "r2"})
      fs::copy_file(l.layer(std::string(r) + "-work") / "restore.log",
                    fs::path(logs_out) / (std::string(r) + "-restore.log"), fs::copy_options::overwrite_existing);
  }
  MESSAGE(fmt::format("freeze {:.2f} ms, dump cold {:.1f} ms, warm {:.1f} ms, restores {:.1f} / {:.1f} ms, "
                      "SIGCONT {:.3f} ms, counter at dump {}, copy 1 now {}, original now {}",
                      freeze_ms, cold_dump_ms, dump_ms, copies[0].ms, copies[1].ms, activate_ms, dumped, resumed.back(),
                      original.back()));
}
