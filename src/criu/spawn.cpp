#include "criu/spawn.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "criu/channel.hpp"
#include "criu/pids.hpp"
#include "process/clone.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

extern char** environ;

namespace deltabox::criu {

namespace {

// How long a finished or abandoned CRIU may take to exit before it is killed.
constexpr int kExitTimeoutMs = 10'000;

// The children report over a SEQPACKET socket that closes (EOF) once CRIU has exec'd.
enum class Step : int { none, cgroup_v1, setns, clone_sibling, stdio, keep_fds, socketpair, send_socket, exec };
enum class ReportKind : int { pid = 1, socket = 2, error = 3 };
struct Report {
  ReportKind kind;
  Step step;
  int err;
  pid_t pid;
};

const char* step_name(Step step) {
  switch (step) {
    case Step::none: return "start";
    case Step::cgroup_v1: return "join cgroup v1 dir";
    case Step::setns: return "setns";
    case Step::clone_sibling: return "fork into the pid namespace";
    case Step::stdio: return "set up stdio";
    case Step::keep_fds: return "keep fds open";
    case Step::socketpair: return "socketpair";
    case Step::send_socket: return "hand over the RPC socket";
    case Step::exec: return "exec";
  }
  return "?";
}

// Everything the child needs, prepared before the fork, so that the child sticks to
// async-signal-safe calls (a multithreaded caller stays safe); only a failing clone_sibling()
// allocates (its exception), and the child exits right after.
struct ChildPlan {
  int exe_fd = -1;
  int devnull_fd = -1;
  int report_fd = -1;
  const std::vector<std::string>* v1_tasks_files = nullptr;
  std::span<const int> keep_fds;
  int ns_pidfd = -1;
  int ns_flags = 0;
  bool fork_into_pidns = false;
  bool quiet = false;
  char fd_arg[16] = {};
  char* argv[4] = {};
  char* const* envp = nullptr;
};

bool send_report(int sock, Report report, int fd) noexcept {
  iovec iov{&report, sizeof report};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  return ::sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof report);
}

[[noreturn]] void child_fail(const ChildPlan& plan, Step step, int err) noexcept {
  send_report(plan.report_fd, Report{ReportKind::error, step, err, 0}, -1);
  ::_exit(127);
}

void format_fd(char* out, int fd) noexcept {
  char digits[12];
  int n = 0;
  do digits[n++] = static_cast<char>('0' + fd % 10);
  while ((fd /= 10) > 0);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

void join_v1_cgroups(const ChildPlan& plan) noexcept {
  for (const auto& file : *plan.v1_tasks_files) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) child_fail(plan, Step::cgroup_v1, errno);
    ::close(fd);
  }
}

// Only the fds CRIU is told about survive the exec, under their numbers.
void prepare_fds(const ChildPlan& plan) noexcept {
  if (::dup2(plan.devnull_fd, STDIN_FILENO) < 0 || ::dup2(plan.devnull_fd, STDOUT_FILENO) < 0)
    child_fail(plan, Step::stdio, errno);
  if (plan.quiet && ::dup2(plan.devnull_fd, STDERR_FILENO) < 0) child_fail(plan, Step::stdio, errno);
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) child_fail(plan, Step::keep_fds, errno);
  for (int fd : plan.keep_fds)
    if (::fcntl(fd, F_SETFD, 0) < 0) child_fail(plan, Step::keep_fds, errno);
}

[[noreturn]] void exec_criu(ChildPlan& plan) noexcept {
  prepare_fds(plan);
  // The socketpair is made here, by the process that becomes CRIU: CRIU resolves images_dir_fd
  // and work_dir_fd as /proc/<SO_PEERCRED pid>/fd/<n>, and the peer credentials of a socketpair
  // name its creator. Made by us outside CRIU's pid namespace, that pid would read as 0.
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) child_fail(plan, Step::socketpair, errno);
  if (::fcntl(sp[1], F_SETFD, 0) < 0) child_fail(plan, Step::socketpair, errno);
  if (!send_report(plan.report_fd, Report{ReportKind::socket, Step::none, 0, 0}, sp[0]))
    child_fail(plan, Step::send_socket, errno);
  ::close(sp[0]);
  format_fd(plan.fd_arg, sp[1]);
  ::syscall(SYS_execveat, plan.exe_fd, "", plan.argv, plan.envp, AT_EMPTY_PATH);
  child_fail(plan, Step::exec, errno);
}

[[noreturn]] void run_child(ChildPlan& plan) noexcept {
  reset_signals_in_child();
  join_v1_cgroups(plan);
  if (plan.ns_pidfd >= 0 && ::setns(plan.ns_pidfd, plan.ns_flags) < 0) child_fail(plan, Step::setns, errno);
  if (plan.fork_into_pidns) {
    // setns(CLONE_NEWPID) only moves our future children: CRIU must be one. CLONE_PARENT keeps
    // it our caller's child, so the caller can wait for it.
    pid_t pid;
    try {
      pid = clone_sibling();
    } catch (const Error& e) {
      child_fail(plan, Step::clone_sibling, e.code());
    }
    if (pid > 0) {
      send_report(plan.report_fd, Report{ReportKind::pid, Step::none, 0, pid}, -1);
      ::_exit(0);
    }
  }
  exec_criu(plan);
}


struct Reports {
  std::optional<pid_t> pid;
  UniqueFd socket;
  std::optional<Report> error;
};

// Reads until every child closed its end: after CRIU's exec, or after the children died.
Reports read_reports(int sock) {
  Reports out;
  while (auto packet = recv_packet(sock)) {
    if (packet->data.size() != sizeof(Report)) fail("criu spawn: bad report of {} bytes", packet->data.size());
    Report r;
    std::memcpy(&r, packet->data.data(), sizeof r);
    switch (r.kind) {
      case ReportKind::pid: out.pid = r.pid; break;
      case ReportKind::socket: out.socket = std::move(packet->fd); break;
      case ReportKind::error: out.error = r; break;
    }
  }
  return out;
}

int wait_pid(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw_errno(fmt::format("wait for criu (pid {})", pid));
  }
  return status;
}

void check_spawn_options(const SpawnOptions& o) {
  if (o.ns_flags != 0 && o.ns_pidfd < 0) fail("criu spawn: ns_flags without ns_pidfd");
  if ((o.ns_flags & CLONE_NEWPID) && !(o.ns_flags & CLONE_NEWNS))
    fail("criu spawn: CLONE_NEWPID needs CLONE_NEWNS (CRIU reads the /proc of its pid namespace)");
}

}  // namespace

std::vector<std::string> criu_environment(char* const* env) {
  std::vector<std::string> out;
  bool has_fault = false;
  for (char* const* e = env; e && *e; ++e) {
    out.emplace_back(*e);
    if (out.back().starts_with("CRIU_FAULT=")) has_fault = true;
  }
  // CRIU stops a task leaving its parasite with a hardware breakpoint on rt_sigreturn. On some
  // VMs of this kind the breakpoint never fires: the task returns to its own code untraced and
  // CRIU waits for it forever (every dump and restore hung on one machine). FI_NO_BREAKPOINTS
  // (130) makes CRIU step there with PTRACE_SYSCALL instead, which always works. A CRIU_FAULT
  // set by the caller (CRIU's debugging knob) is kept.
  if (!has_fault) out.emplace_back("CRIU_FAULT=130");
  return out;
}

UniqueFd open_executable(const std::string& name) {
  auto open_path = [](const std::string& path) {
    return UniqueFd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  };
  if (name.find('/') != std::string::npos) {
    UniqueFd fd = open_path(name);
    if (!fd) throw_errno(fmt::format("open {}", name));
    return fd;
  }
  const char* env = std::getenv("PATH");
  std::string_view path = env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (!path.empty()) {
    size_t colon = path.find(':');
    std::string dir(path.substr(0, colon));
    path = colon == std::string_view::npos ? std::string_view{} : path.substr(colon + 1);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) != 0) continue;
    if (UniqueFd fd = open_path(candidate)) return fd;
  }
  fail("criu: {} not found in PATH", name);
}

SwrkProcess::SwrkProcess(UniqueFd socket, pid_t pid, UniqueFd pidfd)
    : socket_(std::move(socket)), pid_(pid), pidfd_(std::move(pidfd)) {}

SwrkProcess::SwrkProcess(SwrkProcess&& other) noexcept
    : socket_(std::move(other.socket_)), pid_(std::exchange(other.pid_, -1)), pidfd_(std::move(other.pidfd_)) {}

SwrkProcess SwrkProcess::start(const SpawnOptions& options, std::span<const int> keep_fds, bool quiet) {
  check_spawn_options(options);
  UniqueFd exe = open_executable(options.criu_path);
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_errno("open /dev/null");
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) throw_errno("criu spawn: socketpair");
  UniqueFd reports_in(sp[0]), reports_out(sp[1]);

  std::vector<std::string> v1_tasks;
  for (const auto& dir : options.cgroup_v1_dirs) v1_tasks.push_back(dir + "/tasks");
  std::vector<int> keep;
  for (int fd : keep_fds) if (fd >= 0) keep.push_back(fd);
  for (int fd : options.inherit_fds) if (fd >= 0) keep.push_back(fd);
  for (int fd : keep)
    if (fd <= STDERR_FILENO) fail("criu spawn: fd {} would be CRIU's stdio; pass fds >= 3", fd);
  std::string arg0 = "criu", arg1 = "swrk";
  std::vector<std::string> env = criu_environment(environ);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  ChildPlan plan;
  plan.exe_fd = exe.get();
  plan.devnull_fd = devnull.get();
  plan.report_fd = reports_out.get();
  plan.v1_tasks_files = &v1_tasks;
  plan.keep_fds = keep;
  plan.ns_pidfd = options.ns_pidfd;
  plan.ns_flags = options.ns_flags;
  plan.fork_into_pidns = (options.ns_flags & CLONE_NEWPID) != 0;
  plan.quiet = quiet;
  plan.argv[0] = arg0.data();
  plan.argv[1] = arg1.data();
  plan.argv[2] = plan.fd_arg;
  plan.argv[3] = nullptr;
  plan.envp = envp.data();

  pid_t child = clone_process(0, options.cgroup2_fd);
  if (child == 0) run_child(plan);
  reports_out.reset();

  Reports reports;
  try {
    reports = read_reports(reports_in.get());
  } catch (...) {
    ::kill(child, SIGKILL);
    wait_pid(child);
    throw;
  }
  pid_t criu_pid = child;
  if (plan.fork_into_pidns) {
    wait_pid(child);  // the intermediate process exits once CRIU is forked
    criu_pid = reports.pid.value_or(-1);
  }
  if (reports.error || !reports.socket) {
    if (criu_pid > 0) wait_pid(criu_pid);
    if (!reports.error) fail("criu spawn: the child died before handing over the RPC socket");
    throw Error(fmt::format("criu spawn: {}", step_name(reports.error->step)), reports.error->err);
  }
  UniqueFd pidfd = pidfd_open(criu_pid);
  log::debug("criu swrk started (pid {})", criu_pid);
  return SwrkProcess(std::move(reports.socket), criu_pid, std::move(pidfd));
}

int SwrkProcess::finish() {
  socket_.reset();
  if (pid_ < 0) return 0;
  pollfd p{pidfd_.get(), POLLIN, 0};
  int rc;
  do rc = ::poll(&p, 1, kExitTimeoutMs);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    log::warn("criu (pid {}) did not exit in {} ms; killing it", pid_, kExitTimeoutMs);
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  }
  int status = wait_pid(std::exchange(pid_, -1));
  pidfd_.reset();
  return status;
}

SwrkProcess::~SwrkProcess() {
  try {
    finish();
  } catch (const std::exception& e) {
    log::warn("criu: {}", e.what());
  }
}

}  // namespace deltabox::criu
