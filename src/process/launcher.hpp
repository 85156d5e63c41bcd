#pragma once
// Parent side of container creation: clone the setup stage, answer its requests (id maps,
// hooks), and hand back the init's pid once it waits for `start`.
#include <sys/types.h>

#include <functional>
#include <string>

#include <oci/config.hpp>

#include "linux/namespaces.hpp"
#include "linux/sync.hpp"
#include "process/container_init.hpp"

namespace deltabox {

struct LaunchedInit {
  pid_t pid = 0;
  SyncChannel channel;
  // Lets the init outlive us: it drops its parent-death signal and confirms.
  void release();
  // SIGKILL and reap: for failure paths before release().
  void kill_and_reap();
};

struct LaunchSpec {
  InitContext init;
  // Runs a hook stage ("createRuntime", ...) in the parent at the init's request.
  std::function<void(const std::string& stage, pid_t init_pid)> run_hooks;
};

// Returns once the init finished its setup; on failure everything it started is killed and reaped.
LaunchedInit launch_init(LaunchSpec& spec);

}  // namespace deltabox
