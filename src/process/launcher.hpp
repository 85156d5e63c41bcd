#pragma once
// Parent side of container creation: clone the setup stage, answer its requests (id maps,
// hooks), and hand back the init's pid once it waits for `start`.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include <oci/config.hpp>

#include "linux/namespaces.hpp"
#include "linux/sync.hpp"
#include "process/container_init.hpp"

namespace deltabox {

struct LaunchedInit {
  pid_t pid = 0;
  SyncChannel channel;
  // Lets the init outlive us: it drops its parent-death signal and confirms. (A fork's anchor
  // learns its first generation's pid in `payload`.)
  void release(const std::string& payload = {});
  // SIGKILL and reap: for failure paths before release().
  void kill_and_reap();
};

// Snapshot-enabled containers: the init is an anchor (anchor.hpp) and the workload runs as
// generation 0 beneath it, in nested pid and mount namespaces, on an overlay the anchor mounts.
struct AnchorSpec {
  std::function<void()> mount_generation_root;  // runs in the anchor's mount namespace
  std::string control_socket;
  cgroups::Manager* anchor_cgroup = nullptr;
  cgroups::Manager* generation_cgroup = nullptr;
  int anchor_cgroup_fd = -1;  // cgroup2 dirs for CLONE_INTO_CGROUP (or -1)
  int generation_cgroup_fd = -1;
  // false: the anchor starts with no generation (a fork: the caller restores one into it).
  bool start_generation = true;
};

struct LaunchSpec {
  InitContext init;
  std::optional<AnchorSpec> anchor;
  // Runs a hook stage ("createRuntime", ...) in the parent at the init's request.
  std::function<void(const std::string& stage, pid_t init_pid)> run_hooks;
  // Given the parent's copy of the init's seccomp notify fd (linux.seccomp.listenerPath):
  // sends it to the agent. Unset: a notify filter fails.
  std::function<void(int notify_fd, pid_t init_pid)> send_seccomp_fd;
};

// Returns once the init finished its setup; on failure everything it started is killed and reaped.
LaunchedInit launch_init(LaunchSpec& spec);

}  // namespace deltabox
