#pragma once
// The container's init, from the moment it exists (pid 1 of its namespaces, a child of the CLI)
// to the execve of the user's process after `start`.
#include <filesystem>
#include <string>
#include <vector>

#include <oci/config.hpp>

#include "cgroups/manager.hpp"
#include "linux/sync.hpp"

namespace deltabox {

struct InitContext {
  const oci::Config* config = nullptr;
  std::string id;
  std::filesystem::path bundle;
  std::filesystem::path rootfs;
  cgroups::Manager* cgroups = nullptr;
  bool no_pivot = false;
  bool new_keyring = true;
  int console_socket = -1;       // where the pty master goes when process.terminal is set
  int start_fifo = -1;           // read end: a byte arrives when `start` runs
  int inherited_fds = 0;         // fds 3..3+n-1 pass to the container (LISTEN_FDS + --preserve-fds)
  std::vector<std::string> extra_env;  // LISTEN_FDS/LISTEN_PID when sockets are passed
  pid_t host_pid = 0;            // our pid as the host sees it (learnt when hooks need it)
};

// Never returns: execs the container process or exits non-zero after sending the error upstream.
[[noreturn]] void run_container_init(InitContext& ctx, const SyncChannel& parent);

}  // namespace deltabox
