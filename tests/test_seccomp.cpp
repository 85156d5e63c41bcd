// Seccomp: compiling profiles (pure) and loading filters in forked children that report through
// their exit code only.
#include <doctest.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>

#include "linux/seccomp.hpp"
#include "util/error.hpp"

using namespace deltabox;

namespace {

template <typename Fn>
int in_child(Fn&& fn) {
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
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

oci::SeccompSyscall rule(std::vector<std::string> names, std::string action,
                         std::vector<oci::SeccompArg> args = {}) {
  oci::SeccompSyscall s;
  s.names = std::move(names);
  s.action = std::move(action);
  s.args = std::move(args);
  return s;
}

oci::SeccompArg arg(uint32_t index, uint64_t value, std::string op, uint64_t value_two = 0) {
  return oci::SeccompArg{index, value, value_two, std::move(op)};
}

// A trimmed version of Docker's default profile (x86_64 flavour), with a few extra actions.
oci::Seccomp docker_like_profile() {
  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ERRNO";
  s.default_errno_ret = 1;
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
  s.syscalls.push_back(rule(
      {"accept", "accept4", "access", "arch_prctl", "bind", "brk", "capget", "capset", "chdir", "chmod",
       "chown", "clock_gettime", "close", "connect", "dup", "dup2", "dup3", "epoll_create1", "epoll_ctl",
       "epoll_wait", "execve", "exit", "exit_group", "fcntl", "fstat", "futex", "getcwd", "getdents64",
       "getpid", "getppid", "getuid", "ioctl", "lseek", "mmap", "mprotect", "munmap", "newfstatat",
       "openat", "pipe2", "poll", "read", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "socketcall",
       "set_tid_address", "wait4", "write", "no_such_syscall_in_any_kernel"},
      "SCMP_ACT_ALLOW"));
  // Same index three times: runc falls back to one rule per condition (OR).
  s.syscalls.push_back(rule({"personality"}, "SCMP_ACT_ALLOW",
                            {arg(0, 0x0, "SCMP_CMP_EQ"), arg(0, 0x0008, "SCMP_CMP_EQ"),
                             arg(0, 0x20000, "SCMP_CMP_EQ")}));
  s.syscalls.push_back(rule({"clone"}, "SCMP_ACT_ALLOW", {arg(0, 0x7E020000, "SCMP_CMP_MASKED_EQ", 0)}));
  // Different indexes: one rule with both conditions (AND).
  s.syscalls.push_back(rule({"socket"}, "SCMP_ACT_ALLOW",
                            {arg(0, 40, "SCMP_CMP_NE"), arg(1, 5, "SCMP_CMP_LE")}));
  auto errno_rule = rule({"mkdir", "mkdirat"}, "SCMP_ACT_ERRNO");
  errno_rule.errno_ret = 38;
  s.syscalls.push_back(errno_rule);
  s.syscalls.push_back(rule({"ptrace"}, "SCMP_ACT_LOG"));
  s.syscalls.push_back(rule({"kexec_load"}, "SCMP_ACT_KILL_PROCESS"));
  s.syscalls.push_back(rule({"reboot"}, "SCMP_ACT_KILL"));
  s.syscalls.push_back(rule({"acct"}, "SCMP_ACT_TRAP"));
  s.syscalls.push_back(rule({"swapon"}, "SCMP_ACT_TRACE"));
  auto hostname = rule({"sethostname"}, "SCMP_ACT_ERRNO", {arg(1, 1, "SCMP_CMP_GT")});
  hostname.errno_ret = 13;
  s.syscalls.push_back(hostname);
  s.syscalls.push_back(rule({"setdomainname"}, "SCMP_ACT_ERRNO"));  // same as default: skipped
  return s;
}

std::string compile_error(const oci::Seccomp& s) {
  try {
    compile_seccomp(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("seccomp: features lists") {
  auto actions = seccomp_known_actions();
  CHECK(actions.size() == 9);
  CHECK(std::is_sorted(actions.begin(), actions.end()));
  CHECK(std::find(actions.begin(), actions.end(), "SCMP_ACT_NOTIFY") != actions.end());
  CHECK(seccomp_known_operators() ==
        std::vector<std::string>{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                                 "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"});
  auto archs = seccomp_known_archs();
  CHECK(std::is_sorted(archs.begin(), archs.end()));
  CHECK(std::find(archs.begin(), archs.end(), "SCMP_ARCH_X86_64") != archs.end());
  CHECK(seccomp_known_flags() == std::vector<std::string>{"SECCOMP_FILTER_FLAG_TSYNC",
                                                          "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                                          "SECCOMP_FILTER_FLAG_LOG"});
  auto supported = seccomp_supported_flags();
  CHECK(supported.size() <= 3);
  CHECK(supported.front() == "SECCOMP_FILTER_FLAG_TSYNC");
  CHECK(libseccomp_version().rfind("2.", 0) == 0);
}

TEST_CASE("seccomp: a docker-like profile compiles with runc's rule semantics") {
  auto profile = docker_like_profile();
  profile.flags = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"};
  auto program = compile_seccomp(profile);
  CHECK(program.ctx);
  CHECK_FALSE(program.uses_notify);
  CHECK(program.skipped_syscalls == std::vector<std::string>{"no_such_syscall_in_any_kernel"});

  const std::string pfc = seccomp_pfc(program);
  CHECK(contains(pfc, "filter for arch x86_64"));
  CHECK(contains(pfc, "filter for arch x86 "));
  CHECK(contains(pfc, "filter for arch x32"));
  CHECK(contains(pfc, "action ERRNO(1);"));   // default
  CHECK(contains(pfc, "action ERRNO(38);"));  // mkdir's errnoRet
  CHECK(contains(pfc, "action ERRNO(1);"));
  CHECK(contains(pfc, "action LOG;"));
  CHECK(contains(pfc, "action KILL_PROCESS;"));
  CHECK(contains(pfc, "action TRAP;"));
  CHECK(contains(pfc, "action TRACE(1);"));  // TRACE without errnoRet: EPERM, as runc
  CHECK(contains(pfc, "action KILL;"));      // plain KILL is KILL_THREAD
  CHECK(contains(pfc, "if ($a0.lo32 == 8)"));
  CHECK(contains(pfc, "if ($a0.lo32 == 131072)"));
  CHECK(contains(pfc, "& 0x7e020000 == 0"));
  CHECK_FALSE(contains(pfc, "\"setdomainname\""));
  CHECK(contains(pfc, "\"sethostname\""));
  CHECK(contains(pfc, "action ERRNO(13);"));
}

TEST_CASE("seccomp: conditions on one argument become separate rules, on different ones an AND") {
  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  s.syscalls.push_back(rule({"personality"}, "SCMP_ACT_ERRNO",
                            {arg(0, 1, "SCMP_CMP_EQ"), arg(0, 2, "SCMP_CMP_EQ")}));
  s.syscalls.push_back(rule({"socket"}, "SCMP_ACT_ERRNO", {arg(0, 1, "SCMP_CMP_EQ"), arg(1, 2, "SCMP_CMP_EQ")}));
  const std::string pfc = seccomp_pfc(compile_seccomp(s));
  // OR: both comparisons of $a0 sit at the same depth, each with its own action.
  CHECK(contains(pfc, "      if ($a0.lo32 == 2)\n        action ERRNO(1);\n      if ($a0.lo32 == 1)\n"));
  // AND: the $a1 test is nested inside the $a0 test.
  CHECK(contains(pfc, "      if ($a0.lo32 == 1)\n        if ($a1.hi32 == 0)\n          if ($a1.lo32 == 2)\n"));
}

TEST_CASE("seccomp: bad actions, operators, architectures and flags name the config path") {
  auto base = [] {
    oci::Seccomp s;
    s.default_action = "SCMP_ACT_ALLOW";
    for (int i = 0; i < 4; ++i) s.syscalls.push_back(rule({"getpid"}, "SCMP_ACT_ERRNO"));
    return s;
  };
  auto s = base();
  s.syscalls[3].action = "X";
  CHECK(compile_error(s) == "linux.seccomp.syscalls[3].action: unknown action \"X\"");

  s = base();
  s.default_action = "SCMP_ACT_EXPLODE";
  CHECK(compile_error(s) == "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_EXPLODE\"");

  s = base();
  s.syscalls[1].args = {arg(0, 1, "SCMP_CMP_EQ"), arg(1, 1, "SCMP_CMP_ALMOST")};
  CHECK(compile_error(s) == "linux.seccomp.syscalls[1].args[1].op: unknown operator \"SCMP_CMP_ALMOST\"");

  s = base();
  s.syscalls[0].args = {arg(6, 1, "SCMP_CMP_EQ")};
  CHECK(contains(compile_error(s), "linux.seccomp.syscalls[0].args[0].index: 6 is out of range"));

  s = base();
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"};
  CHECK(compile_error(s) == "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_VAX\"");

  s = base();
  s.architectures = {"SCMP_ARCH_S390X"};  // big endian: cannot share a filter with x86_64
  CHECK(contains(compile_error(s), "linux.seccomp.architectures[0]: add architecture SCMP_ARCH_S390X"));

  s = base();
  s.flags = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_BOGUS"};
  CHECK(compile_error(s) == "linux.seccomp.flags[1]: unknown seccomp flag \"SECCOMP_FILTER_FLAG_BOGUS\"");

  s = base();
  s.syscalls[2].names = {"getpid", ""};
  CHECK(compile_error(s) == "linux.seccomp.syscalls[2].names[1]: empty string is not a valid syscall");
}

TEST_CASE("seccomp: notify is tracked, and refused as default action or for write") {
  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  s.syscalls.push_back(rule({"no_such_syscall"}, "SCMP_ACT_NOTIFY"));
  CHECK_FALSE(compile_seccomp(s).uses_notify);  // skipped: no listener will exist
  s.syscalls.push_back(rule({"getppid"}, "SCMP_ACT_NOTIFY"));
  CHECK(compile_seccomp(s).uses_notify);

  s.syscalls.push_back(rule({"read", "write"}, "SCMP_ACT_NOTIFY"));
  CHECK(compile_error(s) == "linux.seccomp.syscalls[2]: SCMP_ACT_NOTIFY cannot be used for the write syscall");

  s.syscalls.clear();
  s.default_action = "SCMP_ACT_NOTIFY";
  CHECK(compile_error(s) == "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action");
}

TEST_CASE("seccomp: unknown syscalls are skipped, and a profile of only unknown ones compiles") {
  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  s.syscalls.push_back(rule({"frobnicate", "unfrobnicate"}, "SCMP_ACT_KILL"));
  auto program = compile_seccomp(s);
  CHECK(program.skipped_syscalls == std::vector<std::string>{"frobnicate", "unfrobnicate"});
}

TEST_CASE("seccomp: a loaded ERRNO rule returns its errno while other syscalls work (child)") {
  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  auto deny = rule({"mkdir", "mkdirat"}, "SCMP_ACT_ERRNO");
  deny.errno_ret = 42;
  s.syscalls.push_back(deny);
  auto program = compile_seccomp(s);  // before fork: a compile error is a test failure here
  int rc = in_child([&] {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return 1;
    load_seccomp(program);
    errno = 0;
    if (::mkdir("/tmp/deltabox-seccomp-test-never-created", 0700) != -1 || errno != 42) return 2;
    if (::syscall(SYS_mkdirat, AT_FDCWD, "/tmp/deltabox-seccomp-test-never-created", 0700) != -1 ||
        errno != 42)
      return 3;
    if (::getpid() <= 0) return 4;
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 5;
    ::close(fd);
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("seccomp: a loaded KILL rule kills the child with SIGSYS") {
  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  s.syscalls.push_back(rule({"getppid"}, "SCMP_ACT_KILL"));
  auto program = compile_seccomp(s);
  int rc = in_child([&] {
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // no core file from the SIGSYS
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return 1;
    load_seccomp(program);
    ::syscall(SYS_getppid);
    return 2;
  });
  CHECK(rc == 128 + SIGSYS);
}

TEST_CASE("seccomp: the notify listener answers a notified syscall (child)") {
  oci::Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  s.syscalls.push_back(rule({"getppid"}, "SCMP_ACT_NOTIFY"));
  auto program = compile_seccomp(s);
  int rc = in_child([&] {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return 1;
    UniqueFd listener = load_with_listener(program);
    if (!listener) return 2;
    pid_t target = ::fork();  // inherits the filter; its getppid() waits for us
    if (target == 0) ::_exit(::syscall(SYS_getppid) == 4242 ? 0 : 1);
    seccomp_notif* req = nullptr;
    seccomp_notif_resp* resp = nullptr;
    if (seccomp_notify_alloc(&req, &resp) < 0) return 3;
    int result = 0;
    if (seccomp_notify_receive(listener.get(), req) < 0) {
      result = 4;
    } else {
      resp->id = req->id;
      resp->val = 4242;
      resp->error = 0;
      resp->flags = 0;
      if (seccomp_notify_respond(listener.get(), resp) < 0) result = 5;
    }
    seccomp_notify_free(req, resp);
    int status = 0;
    ::waitpid(target, &status, 0);
    if (result) return result;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 6;
  });
  CHECK(rc == 0);
}
