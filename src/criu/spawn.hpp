#pragma once
// Starting `criu swrk <fd>`: where it runs (namespaces, cgroups), which of our fds it sees, and
// an owner that always reaps it.
#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "util/fd.hpp"

namespace deltabox::criu {

struct SpawnOptions {
  std::string criu_path = "criu";  // a name is looked up in $PATH, in OUR mount namespace
  // ns_pidfd >= 0: setns(ns_pidfd, ns_flags) before exec, e.g. the container anchor's
  // CLONE_NEWPID|CLONE_NEWNS. With CLONE_NEWPID CRIU runs inside that pid namespace (one more
  // fork, CLONE_PARENT so it is still our child), and the trees it restores are reparented to
  // that namespace's init when it exits. CLONE_NEWPID requires CLONE_NEWNS: CRIU reads /proc,
  // which must be a procfs of the pid namespace it runs in.
  int ns_pidfd = -1;
  int ns_flags = 0;
  int cgroup2_fd = -1;                      // clone3 CLONE_INTO_CGROUP target
  std::vector<std::string> cgroup_v1_dirs;  // "0" is written to <dir>/tasks before setns
  std::vector<int> inherit_fds;             // more fds to keep open (non-CLOEXEC) in CRIU
};

// A running `criu swrk`: its end of the RPC socket and its pid. The destructor closes the socket
// (CRIU then finishes or aborts) and reaps CRIU, killing it if it does not exit in time.
class SwrkProcess {
 public:
  // keep_fds: fds CRIU must see under the same numbers (images dir, work dir, inherit_fd); all
  // >= 3, as CRIU's stdin and stdout are /dev/null. Negative entries are skipped.
  // quiet: CRIU's stderr goes to /dev/null (else it is ours).
  static SwrkProcess start(const SpawnOptions& options, std::span<const int> keep_fds, bool quiet = false);

  SwrkProcess(SwrkProcess&&) noexcept;
  SwrkProcess& operator=(SwrkProcess&&) = delete;
  SwrkProcess(const SwrkProcess&) = delete;
  ~SwrkProcess();

  int socket() const { return socket_.get(); }
  pid_t pid() const { return pid_; }  // in our pid namespace
  // Closes the socket and waits for CRIU; returns the wait status.
  int finish();

 private:
  SwrkProcess(UniqueFd socket, pid_t pid, UniqueFd pidfd);
  UniqueFd socket_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

// The environment CRIU runs with: env (ours) plus CRIU_FAULT=130 (no hardware breakpoints)
// unless env sets CRIU_FAULT.
std::vector<std::string> criu_environment(char* const* env);

// An O_PATH fd of the criu binary: a path, or a name looked up in $PATH. Throws
// "open <path>: <errno>" or "criu: <name> not found in PATH". Verbs that destroy state before
// CRIU runs (a cold rollback) call it first.
UniqueFd open_executable(const std::string& name);

}  // namespace deltabox::criu
