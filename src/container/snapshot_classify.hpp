#pragma once
// Which way a snapshot can come back. A template is restored beside the live generation, in the
// same network namespace: anything that claims a name there (a bound TCP/UDP port, an abstract
// unix socket name) would collide, so such snapshots are restored cold, after the live generation
// is gone.
#include <sys/types.h>

#include <string>
#include <vector>

#include "container/snapshot_tree.hpp"

namespace deltabox {

struct Classification {
  SnapshotClass snapshot_class = SnapshotClass::template_ready;
  std::string reason;
};

// pids: every process of the generation (host pids); netns_pid: one of them, whose
// /proc/<pid>/net shows the container's network namespace.
Classification classify_generation(pid_t netns_pid, const std::vector<pid_t>& pids);

// Pure parts, for tests: socket inodes named in /proc/<pid>/net/{tcp,tcp6,udp,udp6} text that
// are bound (any TCP state but CLOSE, any UDP socket with a local port), and abstract unix
// socket inodes in /proc/<pid>/net/unix text. Each maps inode -> description.
std::vector<std::pair<unsigned long, std::string>> bound_inet_sockets(const std::string& text, const char* proto);
std::vector<std::pair<unsigned long, std::string>> abstract_unix_sockets(const std::string& text);

}  // namespace deltabox
