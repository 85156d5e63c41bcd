#pragma once
// Pids across pid namespaces. CRIU reports pids in its own pid namespace (the container
// anchor's); the runtime acts on tasks from the host's.
#include <sys/types.h>

#include <vector>

#include "util/fd.hpp"

namespace deltabox::criu {

// The NSpid line of /proc/<pid>/status: the task's pid in our namespace first, then in each
// nested namespace down to its own. Empty if the task is gone.
std::vector<pid_t> ns_pids(pid_t pid);

// The child of `parent` (both pids in our namespace) whose pid in the parent's own pid
// namespace is pid_in_parent_ns; 0 if there is none. For a CRIU that just forked a restored root.
pid_t child_with_ns_pid(pid_t parent, pid_t pid_in_parent_ns);

// The task whose pid in the pid namespace of ns_member (a host pid, e.g. a container anchor)
// is pid_in_ns; 0 if there is none. Scans /proc and checks that the candidate lives in that
// namespace or below it, not in a sibling namespace that happens to use the same numbers.
pid_t host_pid_of(pid_t pid_in_ns, pid_t ns_member);

UniqueFd pidfd_open(pid_t pid);

}  // namespace deltabox::criu
