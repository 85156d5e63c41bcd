#pragma once
// CRIU over RPC: one `criu swrk` process per request, spawned where the request must run.
//
// WHAT CRIU NEEDS FOR A GENERATION DUMP/RESTORE (CRIU 4.1.1, kernel 6.18; each point is
// exercised by the live test in tests/test_criu.cpp unless marked "untested")
//
// Topology: the anchor A is pid 1 of its own pid namespace, in a private copy of the host's
// mount namespace (CRIU, its libraries, `tar` and /sys/fs/cgroup must be reachable there) with
// a /proc of its own. A generation G is A's child with new pid + mount namespaces, an overlay
// root and pivot_root.
//  1. Run CRIU in A's namespaces: SpawnOptions{.ns_pidfd = pidfd of A, .ns_flags =
//     CLONE_NEWPID | CLONE_NEWNS}. Dump pid = G's pid in A's namespace (NSpid, second field).
//     Trees CRIU restores are its children until it exits, then A's (PPid = A).
//  2. G's init must lead its session (setsid()): else "A session leader of 2(1) is outside of
//     its pid namespace"; shell_job does not help with that.
//  3. The root mount is not dumped. DumpOptions::root is ignored; RestoreOptions::root is a path
//     in A's mount namespace where the copy's root is mounted (an overlay: nothing special);
//     CRIU bind-mounts it (MS_REC) as the tree's "/". Open files are reopened by path there, so
//     the filesystem snapshot must be taken while the tree is frozen: a regular file open without
//     O_APPEND must have the dumped size ("File ... has bad size").
//  4. Bind mounts from outside the tree (/dev/null from the host, volumes) must be external:
//     dump ext_mnt {mountpoint -> key}, restore ext_mnt {key -> path in A's mount namespace}.
//     Without: "mnt: ... ./dev/null doesn't have a proper root mount".
//  5. A tmpfs is dumped by content (CRIU runs tar+gzip: ~3 ms per small tmpfs on dump and again
//     on restore when idle, 15-25 ms under load). The runtime's static /dev can be external
//     instead (ext_mnt {"/dev" -> "dev"}), restored onto a fresh tmpfs the runtime prepared
//     (with files as mountpoints for the nested binds such as /dev/null). /proc needs nothing.
//  6. Freeze G's cgroup2 yourself (cgroup.freeze = 1, wait for "frozen 1" in cgroup.events) and
//     pass freeze_cgroup = its path as seen in A's mount namespace; it must hold exactly the tree.
//     CRIU puts back the state it found: the cgroup is still frozen after the dump; thaw it.
//  7. manage_cgroups_mode = ignore, both ways. Restored tasks then stay in the cgroups CRIU runs
//     in: spawn the restoring CRIU into the copy's cgroups (cgroup2_fd, cgroup_v1_dirs).
//  8. network_lock = SKIP (skip_network_lock, the default here): no iptables.
//  9. Restores over RPC are always detached. Each copy is the init of a new pid namespace below
//     A's, with the dumped inner pids. RestoreResult::pid is in A's pid namespace; host_pid and
//     pidfd are taken at the first notification naming the root (setup-namespaces), while the
//     root is still CRIU's child.
// 10. leave_stopped: every task ends group-stopped (T). CRIU queues SIGSTOP and then detaches, so
//     /proc may show "R" for ~0.2 ms, but no user instruction runs. Activation: SIGCONT each task.
// 11. Stdio pipes from outside the tree (a shim's): restore with inherit_fd
//     {"pipe:[<inode of the dumped pipe>]" -> our fd} to give a copy fresh stdio (without it CRIU
//     makes an unconnected pipe). The client keeps these fds, and the images/work dir fds, open
//     in CRIU under the same numbers.
// 12. CRIU caches its kernel probes in /run/criu.kdat only when /run is a tmpfs: mount one on /run
//     in A's mount namespace. That saves ~30 ms on every CRIU run after the first one.
// 13. Not here: memory tracking (no soft-dirty): pre_dump/track_mem fail, and
//     memory_tracking_supported() says so. Every log has "rlimit: Can't setup RLIMIT_NOFILE":
//     that one is harmless (no CAP_SYS_RESOURCE).
// 14. Untested: terminals (shell_job, orphan_pts_master, external "tty[rdev:dev]"), TCP, and
//     unix sockets that lead out of the tree (ext_unix_sk).
// Measured, 4-5 tasks, 2 idle cores (medians of 10): freeze 0.14 ms; dump 19 ms (the anchor's
// first CRIU run, filling the kdat cache: 50 ms; without the cache every run: ~50 ms); restore
// 21 ms each; SIGCONT of a copy 0.2 ms; spawning CRIU itself (fork, setns, exec, ld.so) ~3 ms.
// Under load (load average 15) all of these double or triple.
#include <string>

#include "criu/errors.hpp"
#include "criu/messages.hpp"
#include "criu/options.hpp"
#include "criu/spawn.hpp"

namespace deltabox::criu {

class Client {
 public:
  explicit Client(SpawnOptions spawn = {});

  // Throw CriuError (with the tail of CRIU's log) when CRIU fails.
  void dump(const DumpOptions& options);
  // One pre-dump (SINGLE_PRE_DUMP): needs memory tracking, which this kernel lacks.
  void pre_dump(const DumpOptions& options);
  RestoreResult restore(const RestoreOptions& options);

  // `criu check` over RPC; throws CriuError. work_dir_fd >= 0: CRIU logs check.log there.
  void check(int work_dir_fd = -1);
  std::string version();             // "4.1.1"
  bool memory_tracking_supported();  // soft-dirty tracking (pre-dump, track_mem)

  const SpawnOptions& spawn_options() const { return spawn_; }

 private:
  void dump_as(const DumpOptions& options, RequestType type);
  SpawnOptions spawn_;
};

}  // namespace deltabox::criu
