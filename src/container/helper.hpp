#pragma once
// The per-container helper: a background process started with the first snapshot that does
// what must not sit on a CLI call's critical path — finishing async dumps, restoring templates,
// discarding old generations, deduplicating images. It lives in a deltabox-owned cgroup (never
// the container's or the caller's), in its own session with no inherited fds, and exits when
// the container's anchor does or its state dir disappears. Its work is journaled (jobs.hpp).
#include <string>

#include "state/store.hpp"

namespace deltabox {

// Makes sure the helper runs and looks at the job queue. lock_fd >= 0 hands the container's
// lock over (an open file description: the lock stays held once we exit).
void wake_helper(const StateStore& store, const std::string& id, int lock_fd = -1);

// `deltabox helper <id>` (hidden): serves until the container is gone. listen_fd: the socket
// wake_helper connects to, bound by the process that started us.
int run_helper(const StateStore& store, const std::string& id, int listen_fd);

// For delete: stops the helper (if any) and removes its cgroup.
void stop_helper(const StateStore& store, const std::string& id);

}  // namespace deltabox
