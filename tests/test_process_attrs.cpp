// Process attributes: personality, scheduler, I/O priority, CPU affinity (pure parsing and
// validation, then live in forked children that report through their exit code only), and the
// NOTIFY_SOCKET proxy and seccomp listener hand-off over real unix sockets in a temporary dir.
#include <doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "linux/notify_socket.hpp"
#include "linux/personality.hpp"
#include "linux/scheduler.hpp"
#include "linux/seccomp.hpp"
#include "linux/seccomp_notify.hpp"
#include "util/error.hpp"

using namespace deltabox;
namespace fs = std::filesystem;

namespace {

// Runs fn in a forked child; returns its exit code (or 128 + signal).
template <typename Fn>
pid_t spawn(Fn&& fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(20);
    int rc = 99;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      rc = 98;
    } catch (...) {
      rc = 97;
    }
    ::_exit(rc);
  }
  REQUIRE(pid > 0);
  return pid;
}

int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

template <typename Fn>
int in_child(Fn&& fn) {
  return wait_child(spawn(std::forward<Fn>(fn)));
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/deltabox-attrs-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

UniqueFd unix_socket(int type, const fs::path& path) {
  UniqueFd sock(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  REQUIRE(sock.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.native().size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  if (type == SOCK_STREAM) REQUIRE(::listen(sock.get(), 4) == 0);
  return sock;
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, timeout_ms) == 1;
}

// One message: its data and (at most) one SCM_RIGHTS fd.
struct Message {
  std::string data;
  UniqueFd fd;
};

Message receive(int sock) {
  Message m;
  char data[65536];
  iovec iov{data, sizeof data};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)]{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return m;
  m.data.assign(data, static_cast<size_t>(n));
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      m.fd.reset(fd);
    }
  }
  return m;
}

std::string fd_target(int fd) {
  char buf[256];
  ssize_t n = ::readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

oci::Scheduler sched(std::string policy) {
  oci::Scheduler s;
  s.policy = std::move(policy);
  return s;
}

}  // namespace

// ---- personality -------------------------------------------------------------------------

TEST_CASE("process attrs: personality domains and flags are validated") {
  CHECK(personality_domain("LINUX") == PER_LINUX);
  CHECK(personality_domain("LINUX32") == PER_LINUX32);
  CHECK_NOTHROW(validate_personality({"LINUX", {}}));
  CHECK_NOTHROW(validate_personality({"LINUX32", {}}));
  CHECK(error_of([] { validate_personality({"X", {}}); }) == "linux.personality.domain: unknown domain \"X\"");
  CHECK(error_of([] { validate_personality({"", {}}); }) == "linux.personality.domain: unknown domain \"\"");
  CHECK(error_of([] { validate_personality({"LINUX", {"ADDR_NO_RANDOMIZE"}}); }) ==
        "linux.personality.flags[0]: unknown flag \"ADDR_NO_RANDOMIZE\"");
}

TEST_CASE("process attrs: LINUX32 is the persona a child reads back, and uname reports it (child)") {
  utsname host{};
  REQUIRE(::uname(&host) == 0);
  const std::string host_machine = host.machine;
  int rc = in_child([&] {
    apply_personality({"LINUX32", {}});
    if ((current_personality() & PER_MASK) != PER_LINUX32) return 1;
    utsname u{};
    if (::uname(&u) < 0) return 2;
    if (host_machine == "x86_64" && std::string(u.machine) != "i686") return 3;
    // Inherited across fork, and LINUX switches it back.
    pid_t grandchild = ::fork();
    if (grandchild == 0) ::_exit((current_personality() & PER_MASK) == PER_LINUX32 ? 0 : 1);
    int status = 0;
    ::waitpid(grandchild, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 4;
    apply_personality({"LINUX", {}});
    if ((current_personality() & PER_MASK) != PER_LINUX) return 5;
    if (::uname(&u) < 0 || std::string(u.machine) != host_machine) return 6;
    return 0;
  });
  CHECK(rc == 0);
}

// ---- scheduler ---------------------------------------------------------------------------

TEST_CASE("process attrs: scheduler validation uses runc's rules and messages") {
  CHECK(error_of([] { validate_scheduler(sched("")); }) == "scheduler policy is required");
  CHECK(error_of([] { validate_scheduler(sched("SCHED_FOO")); }) == "invalid scheduler policy: SCHED_FOO");
  CHECK(contains(error_of([] { validate_scheduler(sched("SCHED_ISO")); }), "invalid scheduler policy: SCHED_ISO"));

  auto s = sched("SCHED_OTHER");
  s.nice = 20;
  CHECK(error_of([&] { validate_scheduler(s); }) == "invalid scheduler.nice: 20 when scheduler.policy is SCHED_OTHER");
  s.policy = "SCHED_BATCH";
  s.nice = -21;
  CHECK(error_of([&] { validate_scheduler(s); }) == "invalid scheduler.nice: -21 when scheduler.policy is SCHED_BATCH");
  s.policy = "SCHED_FIFO";  // runc only range-checks nice for OTHER and BATCH
  CHECK_NOTHROW(validate_scheduler(s));

  s = sched("SCHED_OTHER");
  s.priority = 5;
  CHECK(error_of([&] { validate_scheduler(s); }) ==
        "scheduler.priority can only be specified for SchedFIFO or SchedRR policy");
  s.policy = "SCHED_RR";
  CHECK_NOTHROW(validate_scheduler(s));
  s.priority = 0;
  s.policy = "SCHED_IDLE";
  CHECK_NOTHROW(validate_scheduler(s));  // an explicit 0 is "not specified"

  s = sched("SCHED_FIFO");
  s.period = 1000;
  CHECK(error_of([&] { validate_scheduler(s); }) ==
        "scheduler runtime/deadline/period can only be specified for SchedDeadline policy");
  s.policy = "SCHED_DEADLINE";
  CHECK_NOTHROW(validate_scheduler(s));

  s = sched("SCHED_OTHER");
  s.flags = {"SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_BOGUS"};
  CHECK(error_of([&] { validate_scheduler(s); }) == "invalid scheduler flag: SCHED_FLAG_BOGUS");
}

TEST_CASE("process attrs: scheduler config maps to struct sched_attr like runc's ToSchedAttr") {
  CHECK(sched_policy_value("SCHED_OTHER") == 0);
  CHECK(sched_policy_value("SCHED_FIFO") == 1);
  CHECK(sched_policy_value("SCHED_RR") == 2);
  CHECK(sched_policy_value("SCHED_BATCH") == 3);
  CHECK(sched_policy_value("SCHED_ISO") == 4);
  CHECK(sched_policy_value("SCHED_IDLE") == 5);
  CHECK(sched_policy_value("SCHED_DEADLINE") == 6);

  oci::Scheduler s = sched("SCHED_DEADLINE");
  s.flags = {"SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM",        "SCHED_FLAG_DL_OVERRUN",
             "SCHED_FLAG_KEEP_POLICY",   "SCHED_FLAG_KEEP_PARAMS",    "SCHED_FLAG_UTIL_CLAMP_MIN",
             "SCHED_FLAG_UTIL_CLAMP_MAX"};
  s.runtime = 10'000'000;
  s.deadline = 20'000'000;
  s.period = 30'000'000;
  SchedAttr a = to_sched_attr(s);
  CHECK(a.size == 56);
  CHECK(a.policy == 6);
  CHECK(a.flags == 0x7f);
  CHECK(a.nice == 0);
  CHECK(a.priority == 0);
  CHECK(a.runtime == 10'000'000);
  CHECK(a.deadline == 20'000'000);
  CHECK(a.period == 30'000'000);

  s = sched("SCHED_RR");
  s.priority = 42;
  s.nice = -3;
  a = to_sched_attr(s);
  CHECK(a.policy == 2);
  CHECK(a.priority == 42);
  CHECK(a.nice == -3);
  CHECK(a.flags == 0);
}

TEST_CASE("process attrs: SCHED_BATCH and SCHED_IDLE are applied and read back with sched_getattr (child)") {
  int rc = in_child([] {
    oci::Scheduler s = sched("SCHED_BATCH");
    s.nice = 7;
    s.flags = {"SCHED_FLAG_RESET_ON_FORK"};
    apply_scheduler(s);
    SchedAttr a = get_sched_attr();
    if (a.policy != 3) return 1;
    if (a.nice != 7) return 2;
    if ((a.flags & 0x01) == 0) return 3;
    apply_scheduler(sched("SCHED_IDLE"));
    a = get_sched_attr();
    if (a.policy != 5) return 4;
    if ((a.flags & 0x01) != 0) return 5;
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("process attrs: a scheduler the kernel refuses reports runc's error (child)") {
  int rc = in_child([] {
    oci::Scheduler s = sched("SCHED_FIFO");  // priority 0 is out of FIFO's 1..99
    std::string e = error_of([&] { apply_scheduler(s); });
    if (e != "error setting scheduler: invalid argument") {
      std::fprintf(stderr, "got: %s\n", e.c_str());
      return 1;
    }
    return 0;
  });
  CHECK(rc == 0);
}

// ---- I/O priority ------------------------------------------------------------------------

TEST_CASE("process attrs: ioPriority values and validation") {
  CHECK(io_priority_value({"IOPRIO_CLASS_RT", 0}) == (1 << 13));
  CHECK(io_priority_value({"IOPRIO_CLASS_BE", 4}) == ((2 << 13) | 4));
  CHECK(io_priority_value({"IOPRIO_CLASS_IDLE", 7}) == ((3 << 13) | 7));
  CHECK(error_of([] { validate_io_priority({"IOPRIO_CLASS_NONE", 0}); }) ==
        "invalid io priority class: IOPRIO_CLASS_NONE");
  CHECK(error_of([] { validate_io_priority({"IOPRIO_CLASS_BE", 8}); }) == "invalid ioPriority.Priority: 8");
  CHECK(error_of([] { validate_io_priority({"IOPRIO_CLASS_BE", -1}); }) == "invalid ioPriority.Priority: -1");
}

TEST_CASE("process attrs: ioPriority is applied and read back with ioprio_get (child)") {
  int rc = in_child([] {
    apply_io_priority({"IOPRIO_CLASS_BE", 6});
    if (get_io_priority() != ((2 << 13) | 6)) return 1;
    if (get_io_priority(::getpid()) != ((2 << 13) | 6)) return 2;
    pid_t grandchild = ::fork();  // inherited
    if (grandchild == 0) ::_exit(get_io_priority() == ((2 << 13) | 6) ? 0 : 1);
    int status = 0;
    ::waitpid(grandchild, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 3;
    apply_io_priority({"IOPRIO_CLASS_IDLE", 0});
    if (get_io_priority() != (3 << 13)) return 4;
    return 0;
  });
  CHECK(rc == 0);
}

// ---- CPU affinity ------------------------------------------------------------------------

TEST_CASE("process attrs: CPU lists parse like runc's ToCPUSet") {
  using V = std::vector<unsigned>;
  CHECK(parse_cpu_list("").empty());
  CHECK(parse_cpu_list("0") == V{0});
  CHECK(parse_cpu_list("1") == V{1});
  CHECK(parse_cpu_list("0-1") == V{0, 1});
  CHECK(parse_cpu_list("0,1") == V{0, 1});
  CHECK(parse_cpu_list(",0,1,") == V{0, 1});
  CHECK(parse_cpu_list("0-3,7") == V{0, 1, 2, 3, 7});
  CHECK(parse_cpu_list("0,1,2-3") == V{0, 1, 2, 3});
  CHECK(parse_cpu_list("1, 2, 1-2") == V{1, 2});
  CHECK(parse_cpu_list("    , 1   , 3  ,  5-7,    ") == V{1, 3, 5, 6, 7});
  CHECK(parse_cpu_list("127-129, 1") == V{1, 127, 128, 129});
  CHECK(parse_cpu_list("4096-4098") == V{4096, 4097, 4098});
  CHECK(parse_cpu_list("0,65536") == V{0, 65536});
  CHECK(parse_cpu_list("0-65536").size() == 65537);

  for (const char* bad : {"-", "1-", "-3", ",", " ", "54-53", "1 - 2", "65537", "0-65537", "a", "1-2-3", "+1", "0x1"}) {
    INFO(bad);
    CHECK(contains(error_of([&] { parse_cpu_list(bad); }), fmt::format("invalid CPU list \"{}\"", bad)));
  }
  CHECK(error_of([] { parse_cpu_list("54-53"); }) == "invalid CPU list \"54-53\": invalid range \"54-53\" (start > end)");

  oci::CpuAffinity aff{"0-1", "x"};
  CHECK(contains(error_of([&] { validate_cpu_affinity(aff); }), "process.execCPUAffinity.final: invalid CPU list \"x\""));
  aff = {"9-1", ""};
  CHECK(contains(error_of([&] { validate_cpu_affinity(aff); }), "process.execCPUAffinity.initial: "));
  aff = {"0", "0-1"};
  CHECK_NOTHROW(validate_cpu_affinity(aff));
}

TEST_CASE("process attrs: CPU affinity is applied, read back, and reset (child)") {
  std::vector<unsigned> original = get_cpu_affinity();
  REQUIRE(!original.empty());
  int rc = in_child([&] {
    const std::string first = std::to_string(original.front());
    apply_cpu_affinity(first);
    if (get_cpu_affinity() != std::vector<unsigned>{original.front()}) return 1;
    if (original.size() > 1) {
      const std::string second = std::to_string(original[1]);
      // runc's exec order: initial in the child, then final from the parent on the child's pid.
      oci::CpuAffinity aff{first, second};
      apply_initial_cpu_affinity(aff);
      if (get_cpu_affinity() != std::vector<unsigned>{original.front()}) return 2;
      apply_final_cpu_affinity(&aff, ::getpid());
      if (get_cpu_affinity(::getpid()) != std::vector<unsigned>{original[1]}) return 3;
    }
    // No final: back to every CPU the cgroup allows.
    apply_final_cpu_affinity(nullptr, ::getpid());
    if (get_cpu_affinity() != original) return 4;
    apply_cpu_affinity("");  // unset: no change
    if (get_cpu_affinity() != original) return 5;
    std::string e = error_of([] { apply_cpu_affinity("65000"); });  // no such CPU online
    if (e != "set CPU affinity to 65000: invalid argument") {
      std::fprintf(stderr, "got: %s\n", e.c_str());
      return 6;
    }
    return 0;
  });
  CHECK(rc == 0);
}

// ---- NOTIFY_SOCKET -----------------------------------------------------------------------

namespace {

// A fake systemd: collects datagrams on a SOCK_DGRAM socket and answers BARRIER=1 by closing
// the fd that comes with it.
struct FakeSystemd {
  UniqueFd sock;
  std::vector<std::string> messages;
  std::atomic<bool> barrier_seen{false};
  std::thread thread;

  explicit FakeSystemd(const fs::path& path) : sock(unix_socket(SOCK_DGRAM, path)) {}
  void start() {
    thread = std::thread([this] {
      while (wait_readable(sock.get(), 10'000)) {
        Message m = receive(sock.get());
        messages.push_back(m.data);
        if (m.data == "BARRIER=1") {
          barrier_seen = m.fd.valid();
          return;  // m.fd closes here: the barrier is released
        }
      }
    });
  }
  void join() {
    if (thread.joinable()) thread.join();
  }
  ~FakeSystemd() { join(); }
};

void send_datagram(const fs::path& to, const std::string& data) {
  UniqueFd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, to.c_str());
  if (::sendto(s.get(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    throw_errno("sendto");
}

}  // namespace

TEST_CASE("process attrs: notify socket layout follows runc (socket, mount, env)") {
  TempDir tmp;
  fs::create_directory(tmp.path / "state");
  NotifySocket ns = NotifySocket::create((tmp.path / "host.sock").native(), tmp.path / "state");
  CHECK(ns.socket_path() == tmp.path / "state" / "notify" / "notify.sock");
  CHECK(ns.container_path() == "/run/notify/notify.sock");
  CHECK(ns.container_env() == "NOTIFY_SOCKET=/run/notify/notify.sock");
  struct stat st{};
  REQUIRE(::stat(ns.socket_path().c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 07777) == 0777);
  REQUIRE(::stat((tmp.path / "state" / "notify").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);

  oci::Mount m = ns.mount();
  CHECK(m.destination == "/run/notify");
  CHECK(m.source == (tmp.path / "state" / "notify").native());
  CHECK(m.options == std::vector<std::string>{"bind", "nosuid", "noexec", "nodev", "ro"});

  oci::Config config;
  config.process.emplace();
  config.process->env = {"PATH=/bin"};
  ns.setup_spec(config);
  REQUIRE(config.mounts.size() == 1);
  CHECK(config.mounts[0] == m);
  CHECK(config.process->env == std::vector<std::string>{"PATH=/bin", "NOTIFY_SOCKET=/run/notify/notify.sock"});

  // `start` binds again over the socket `create` left behind.
  NotifySocket again = NotifySocket::create((tmp.path / "host.sock").native(), tmp.path / "state");
  CHECK(again.socket_path() == ns.socket_path());

  // A state dir too deep for sun_path still works.
  fs::path deep = tmp.path / std::string(60, 'd') / std::string(60, 'e');
  fs::create_directories(deep);
  NotifySocket long_one = NotifySocket::create("/run/systemd/notify", deep);
  REQUIRE(::stat(long_one.socket_path().c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));

  const char* saved = std::getenv("NOTIFY_SOCKET");
  std::string saved_value = saved ? saved : "";
  ::unsetenv("NOTIFY_SOCKET");
  CHECK(!NotifySocket::from_environment(tmp.path / "state").has_value());
  ::setenv("NOTIFY_SOCKET", (tmp.path / "host.sock").c_str(), 1);
  auto from_env = NotifySocket::from_environment(tmp.path / "state");
  REQUIRE(from_env.has_value());
  CHECK(from_env->host_socket() == (tmp.path / "host.sock").native());
  if (saved)
    ::setenv("NOTIFY_SOCKET", saved_value.c_str(), 1);
  else
    ::unsetenv("NOTIFY_SOCKET");
}

TEST_CASE("process attrs: READY=1 from the container reaches the host with MAINPID and a barrier") {
  TempDir tmp;
  fs::create_directory(tmp.path / "state");
  FakeSystemd systemd(tmp.path / "host.sock");
  NotifySocket ns = NotifySocket::create((tmp.path / "host.sock").native(), tmp.path / "state");
  const fs::path inside = ns.socket_path();  // what /run/notify/notify.sock is in the container

  int go[2];
  REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
  pid_t container = spawn([&] {
    char c;
    if (::read(go[0], &c, 1) != 1) return 1;
    send_datagram(inside, "STATUS=booting");  // not READY: ignored
    send_datagram(inside, "STATUS=up\nREADY=1\nMAINPID=1");
    ::pause();  // stays alive until killed
    return 0;
  });
  ::close(go[0]);
  systemd.start();  // after fork: the child must not inherit a running thread's state
  REQUIRE(::write(go[1], "x", 1) == 1);
  ::close(go[1]);

  std::string error = error_of([&] { ns.wait_ready_and_forward(container, std::chrono::seconds(10)); });
  ::kill(container, SIGKILL);
  wait_child(container);
  systemd.join();
  CHECK(error == "(no error)");
  CHECK(systemd.messages ==
        std::vector<std::string>{"READY=1\n", fmt::format("MAINPID={}\n", container), "BARRIER=1"});
  CHECK(systemd.barrier_seen);
}

TEST_CASE("process attrs: waiting for READY ends quietly when the container dies, or times out") {
  TempDir tmp;
  fs::create_directory(tmp.path / "state");
  NotifySocket ns = NotifySocket::create((tmp.path / "host.sock").native(), tmp.path / "state");

  pid_t gone = spawn([] { return 0; });
  wait_child(gone);  // reaped: /proc/<pid> disappears
  auto start = std::chrono::steady_clock::now();
  CHECK_NOTHROW(ns.wait_ready_and_forward(gone, std::chrono::seconds(10)));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));

  CHECK(error_of([&] { ns.wait_ready_and_forward(::getpid(), std::chrono::milliseconds(300)); }) ==
        "timed out after 300 ms waiting for READY=1 on the notify socket");
}

// ---- seccomp listener --------------------------------------------------------------------

TEST_CASE("process attrs: the container process state message follows the spec") {
  nlohmann::json state = {{"ociVersion", "1.2.0"}, {"id", "c1"}, {"status", "creating"},
                          {"pid", 42},           {"bundle", "/b"}};
  nlohmann::ordered_json m = container_process_state(42, "meta", state);
  CHECK(m.dump() ==
        R"({"ociVersion":"1.2.0","fds":["seccompFd"],"pid":42,"metadata":"meta","state":)" + state.dump() + "}");
  m = container_process_state(7, "", state);
  CHECK(!m.contains("metadata"));
  CHECK(m["pid"] == 7);

  CHECK(contains(error_of([] { send_seccomp_listener("/nonexistent/agent.sock", 0, 1, "", nlohmann::json::object()); }),
                 "failed to connect with seccomp agent specified in the seccomp profile: dial unix "
                 "/nonexistent/agent.sock: connect: no such file or directory"));
}

TEST_CASE("process attrs: copy_fd_from_process duplicates another process's fd") {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  UniqueFd r(fds[0]), w(fds[1]);
  UniqueFd copy = copy_fd_from_process(::getpid(), r.get());
  struct stat a{}, b{};
  REQUIRE(::fstat(r.get(), &a) == 0);
  REQUIRE(::fstat(copy.get(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);
  CHECK((::fcntl(copy.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("process attrs: the seccomp notify fd and state reach the agent, which answers a syscall") {
  TempDir tmp;
  const fs::path agent_path = tmp.path / "agent.sock";
  UniqueFd agent = unix_socket(SOCK_STREAM, agent_path);

  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  oci::SeccompSyscall notified;
  notified.names = {"getppid"};
  notified.action = "SCMP_ACT_NOTIFY";
  s.syscalls.push_back(notified);
  s.listener_path = agent_path.native();
  s.listener_metadata = "agent-meta";
  auto program = compile_seccomp(s);
  REQUIRE(program.uses_notify);

  nlohmann::json state = {{"ociVersion", oci::kSpecVersion}, {"id", "ctr"}, {"status", "creating"},
                          {"bundle", "/bundle"},             {"annotations", {{"a", "b"}}}};
  pid_t child = spawn([&] {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return 1;
    UniqueFd listener = load_with_listener(program);
    if (!listener) return 2;
    nlohmann::json st = state;
    st["pid"] = ::getpid();
    send_seccomp_listener(s.listener_path, listener.get(), ::getpid(), s.listener_metadata, st);
    listener.reset();  // only the agent holds it now
    pid_t target = ::fork();  // inherits the filter; its getppid() waits for the agent
    if (target == 0) ::_exit(::syscall(SYS_getppid) == 4242 ? 0 : 1);
    int status = 0;
    ::waitpid(target, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 3;
  });

  REQUIRE(wait_readable(agent.get(), 10'000));
  UniqueFd conn(::accept4(agent.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(conn.valid());
  REQUIRE(wait_readable(conn.get(), 10'000));
  Message m = receive(conn.get());
  REQUIRE(m.fd.valid());
  CHECK(fd_target(m.fd.get()) == "anon_inode:seccomp notify");

  nlohmann::json got = nlohmann::json::parse(m.data);
  CHECK(got["ociVersion"] == oci::kSpecVersion);
  CHECK(got["fds"] == nlohmann::json::array({"seccompFd"}));
  CHECK(got["pid"] == child);
  CHECK(got["metadata"] == "agent-meta");
  CHECK(got["state"]["id"] == "ctr");
  CHECK(got["state"]["status"] == "creating");
  CHECK(got["state"]["pid"] == child);
  CHECK(got["state"]["annotations"]["a"] == "b");

  // The fd is live: answer the target's getppid().
  seccomp_notif* req = nullptr;
  seccomp_notif_resp* resp = nullptr;
  REQUIRE(seccomp_notify_alloc(&req, &resp) == 0);
  if (wait_readable(m.fd.get(), 10'000) && seccomp_notify_receive(m.fd.get(), req) == 0) {
    resp->id = req->id;
    resp->val = 4242;
    resp->error = 0;
    resp->flags = 0;
    CHECK(seccomp_notify_respond(m.fd.get(), resp) == 0);
  } else {
    FAIL_CHECK("no notification arrived");
  }
  seccomp_notify_free(req, resp);
  m.fd.reset();
  CHECK(wait_child(child) == 0);
}
