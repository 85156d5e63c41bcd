#include "process/finalize.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "linux/capabilities.hpp"
#include "linux/scheduler.hpp"
#include "linux/seccomp.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

std::string env_value(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& e : env)
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
      return e.substr(key.size() + 1);
  return {};
}

bool has_env(const std::vector<std::string>& env, std::string_view key) {
  return std::any_of(env.begin(), env.end(), [&](const std::string& e) {
    return e.compare(0, key.size(), key) == 0 && e.size() > key.size() && e[key.size()] == '=';
  });
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

std::string home_of(uint32_t uid) {
  std::ifstream passwd("/etc/passwd");
  std::string line;
  while (std::getline(passwd, line)) {
    // name:pw:uid:gid:gecos:home:shell
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string part; std::getline(ss, part, ':');) f.push_back(part);
    if (f.size() >= 6 && f[2] == std::to_string(uid)) return f[5];
  }
  return "/";
}

std::string look_path(const std::string& file, const std::vector<std::string>& env) {
  if (file.find('/') != std::string::npos) {
    struct stat st {};
    if (::stat(file.c_str(), &st) < 0) throw_errno(fmt::format("exec: \"{}\": stat {}", file, file));
    if (!is_executable_file(file)) fail("exec: \"{}\": permission denied", file);
    return file;
  }
  // Only the process's own PATH counts, as with runc: no environment, no search path.
  std::string path = env_value(env, "PATH");
  std::stringstream dirs(path);
  for (std::string dir; !path.empty() && std::getline(dirs, dir, ':');) {
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + file;
    if (is_executable_file(candidate)) return candidate;
  }
  fail("exec: \"{}\": executable file not found in $PATH", file);
}

}  // namespace

ExecTarget resolve_exec_target(const oci::Process& process) {
  if (process.args.empty()) fail("process.args must not be empty");
  ExecTarget t;
  t.envp = process.env;
  if (!has_env(t.envp, "HOME")) t.envp.push_back("HOME=" + home_of(process.user.uid));
  t.argv = process.args;
  t.path = look_path(process.args[0], t.envp);
  return t;
}

void apply_scheduling(const oci::Process& process, bool cpuset_cpus) {
  if (process.scheduler) apply_scheduler(*process.scheduler, cpuset_cpus);
  if (process.io_priority) apply_io_priority(*process.io_priority);
}

bool cpuset_cpus_configured(const oci::Config& config) {
  if (!config.linux || !config.linux->resources || !config.linux->resources->cpu) return false;
  const auto& cpus = config.linux->resources->cpu->cpus;
  return cpus && !cpus->empty();
}

void load_seccomp_with_handoff(const oci::Seccomp& seccomp, const SeccompFdHandoff& handoff) {
  UniqueFd notify_fd = load_with_listener(compile_seccomp(seccomp));
  if (!notify_fd) return;
  if (!handoff) fail("seccomp listenerPath is not set");
  handoff(notify_fd.get());
}

void become_process_identity(const oci::Process& process, const std::optional<oci::Seccomp>& seccomp,
                             const SeccompFdHandoff& handoff) {
  ::umask(process.user.umask.value_or(022));
  if (seccomp && !process.no_new_privileges) load_seccomp_with_handoff(*seccomp, handoff);
  // Try the cwd before dropping privileges: it may only be reachable as root...
  bool cwd_done = process.cwd.empty() || ::chdir(process.cwd.c_str()) == 0;
  keep_caps_across_setuid(true);
  change_user(process.user.uid, process.user.gid, process.user.additional_gids, true);
  // ...or only as the user (root squashing on network filesystems).
  if (!cwd_done && ::chdir(process.cwd.c_str()) < 0) throw_errno(fmt::format("chdir to cwd (\"{}\") set in config.json failed", process.cwd));
  // CVE-2024-21626: a cwd reached through an fd that leads outside the container's root (a
  // /proc/self/fd/N of an inherited host directory) shows as "(unreachable)/...".
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) == nullptr || cwd[0] != '/')
    fail("current working directory is outside of container mount namespace root -- possible container breakout detected");
  if (process.capabilities) {
    for (const auto& name : apply_capabilities(*process.capabilities))
      log::warn("unknown capability \"{}\"", name);
  } else {
    apply_capabilities(oci::Capabilities{std::vector<std::string>{}, std::vector<std::string>{},
                                         std::vector<std::string>{}, std::vector<std::string>{},
                                         std::vector<std::string>{}});
  }
  keep_caps_across_setuid(false);
}

void apply_final_security(const oci::Process& process, const std::optional<oci::Seccomp>& seccomp,
                          const SeccompFdHandoff& handoff) {
  if (!process.no_new_privileges) return;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) throw_errno("set no_new_privs");
  if (seccomp) load_seccomp_with_handoff(*seccomp, handoff);
}

void exec_target(const ExecTarget& target) {
  std::vector<char*> argv, envp;
  for (const auto& a : target.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : target.envp) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(target.path.c_str(), argv.data(), envp.data());
  throw_errno(fmt::format("exec {}", target.path));
}

void cloexec_from(int first) {
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  // Older kernels: walk /proc/self/fd.
  for (int fd = first; fd < 65536; ++fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

void close_fds_except(int first, std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned next = static_cast<unsigned>(first);
  for (int fd : keep) {
    if (fd < first) continue;
    if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::syscall(SYS_close_range, next, ~0U, 0);
}

}  // namespace deltabox
