#include "process/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "process/clone.hpp"
#include "util/fd.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

std::string HookState::to_json() const {
  nlohmann::ordered_json j;
  j["ociVersion"] = oci::kSpecVersion;
  j["id"] = id;
  j["status"] = oci::status_name(status);
  if (pid > 0) j["pid"] = pid;
  j["bundle"] = bundle;
  if (!annotations.empty()) j["annotations"] = annotations;
  return j.dump();
}

namespace {

struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC), "pipe");
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

[[noreturn]] void exec_hook(const oci::Hook& hook, int in, int out, int err) {
  reset_signals_in_child();
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  std::vector<char*> argv, envp;
  for (const auto& a : hook.args) argv.push_back(const_cast<char*>(a.c_str()));
  if (argv.empty()) argv.push_back(const_cast<char*>(hook.path.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : hook.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(hook.path.c_str(), argv.data(), envp.data());
  ::dprintf(2, "exec %s: %s", hook.path.c_str(), ::strerror(errno));
  ::_exit(127);
}

struct HookResult {
  int wait_status = 0;
  bool timed_out = false;
  std::string out, err;
};

// Collects the hook's output until it exits or its timeout passes (then it is killed).
HookResult wait_hook(pid_t pid, int out_fd, int err_fd, int timeout_s) {
  HookResult r;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool exited = false;
  while (!exited) {
    int wait_ms = -1;
    if (timeout_s > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    pollfd fds[3] = {{pidfd.get(), POLLIN, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int n = ::poll(fds, 3, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    char buf[4096];
    for (int i = 1; i < 3; ++i)
      if (fds[i].revents & (POLLIN | POLLHUP)) {
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got > 0) (i == 1 ? r.out : r.err).append(buf, static_cast<size_t>(got));
      }
    if (fds[0].revents & POLLIN) exited = true;
  }
  while (::waitpid(pid, &r.wait_status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

void run_one(const oci::Hook& hook, const std::string& state, const char* stage, size_t index) {
  Pipe in, out, err;
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork hook");
  if (pid == 0) exec_hook(hook, in.read.get(), out.write.get(), err.write.get());
  in.read.reset();
  out.write.reset();
  err.write.reset();
  // A hook that never reads stdin must not kill us with SIGPIPE; the container init calls this
  // too, and an ignored SIGPIPE would survive its execve, so restore the old action.
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old);
  (void)!::write(in.write.get(), state.data(), state.size());
  ::sigaction(SIGPIPE, &old, nullptr);
  in.write.reset();
  HookResult r = wait_hook(pid, out.read.get(), err.read.get(), hook.timeout.value_or(0));
  std::string what;
  if (r.timed_out)
    what = fmt::format("timeout after {} seconds", *hook.timeout);
  else if (WIFSIGNALED(r.wait_status))
    what = fmt::format("signal: {}", ::strsignal(WTERMSIG(r.wait_status)));
  else if (WEXITSTATUS(r.wait_status) != 0)
    what = fmt::format("exit status {}", WEXITSTATUS(r.wait_status));
  else
    return;
  fail("error running {} hook #{}: {}, stdout: {}, stderr: {}", stage, index, what, r.out, r.err);
}

}  // namespace

void run_hooks(const std::vector<oci::Hook>& hooks, const HookState& state, const char* stage) {
  if (hooks.empty()) return;
  const std::string json = state.to_json();
  for (size_t i = 0; i < hooks.size(); ++i) run_one(hooks[i], json, stage, i);
}

void run_hooks_warn_only(const std::vector<oci::Hook>& hooks, const HookState& state, const char* stage) {
  try {
    run_hooks(hooks, state, stage);
  } catch (const std::exception& e) {
    log::warn(e.what());
  }
}

}  // namespace deltabox
