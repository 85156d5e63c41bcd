#pragma once
// fork() variants the libc does not offer: into a cgroup2 directory, or as a sibling of the caller.
#include <sys/types.h>

#include <cstdint>

namespace deltabox {

// clone3 without CLONE_VM: returns 0 in the child, like fork(). cgroup_fd >= 0 adds
// CLONE_INTO_CGROUP, which places the child without the cost of a cgroup migration.
pid_t clone_process(uint64_t flags, int cgroup_fd = -1);
// The child becomes a child of our parent (CLONE_PARENT): the process that must outlive us
// (container init, exec'd process) ends up a direct child of the CLI or of its supervisor.
inline pid_t clone_sibling(uint64_t flags = 0) { return clone_process(flags | 0x00008000ULL /* CLONE_PARENT */); }

// What every child does first: default signal mask and dispositions (the parent blocks signals
// it forwards), no inherited parent-death signal surprises.
void reset_signals_in_child();

// Asks for SIGKILL when the CLI process dies, then checks it did not die already. In a new pid
// namespace getppid() is 0: the parent lives outside it.
void die_with_parent(pid_t parent);

// Moves fd to a number >= min (CLOEXEC), so that it cannot collide with fds passed to the container.
int move_fd_above(int fd, int min);

}  // namespace deltabox
