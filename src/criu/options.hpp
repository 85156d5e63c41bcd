#pragma once
// What a dump or a restore asks of CRIU. Plain data: messages.cpp turns it into a criu_req.
// File descriptors named here are numbers in OUR fd table; the client keeps them open across
// the exec of `criu swrk`, so they are valid in CRIU under the same numbers.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/fd.hpp"

namespace deltabox::criu {

// criu_cg_mode. `ignore` leaves restored tasks in the cgroups CRIU itself runs in: the client
// places CRIU into the target cgroups at spawn (SpawnOptions), which is cheaper and keeps CRIU
// away from cgroups it did not create.
enum class CgroupMode { ignore = 0, none = 1, props = 2, soft = 3, full = 4, strict = 5, default_mode = 6 };

// A point in CRIU's work ("action script") reported over RPC when notify scripts are on. The
// handler runs while CRIU waits for the answer; throwing from it makes CRIU abort the operation.
struct Notification {
  std::string script;          // "pre-dump", "post-dump", "setup-namespaces", "post-restore", ...
  std::optional<pid_t> pid;    // the restored root, in CRIU's pid namespace (some scripts only)
  UniqueFd fd;                 // "orphan-pts-master": the pty master; the handler may take it
};
using NotifyHandler = std::function<void(Notification&)>;

// CRIU's log level: 2 (errors and warnings), or 4 (every step, with timestamps: slower) when
// the runtime itself logs at debug level (--debug).
int default_log_level();

struct DumpOptions {
  pid_t pid = 0;                   // root of the tree, as seen in CRIU's pid namespace
  int images_dir_fd = -1;          // required
  int work_dir_fd = -1;            // logs, stats; -1: the images directory
  std::string log_file = "dump.log";  // a name in the work dir (CRIU refuses subdirectories)
  int log_level = default_log_level();  // 0..4; 4 logs every step (slower)
  bool leave_running = true;
  bool tcp_established = false;
  bool ext_unix_sk = false;
  bool shell_job = false;
  bool file_locks = false;
  bool link_remap = false;         // open-but-deleted files: link them back instead of copying
  std::string root;                // CRIU ignores it on dump; kept for symmetry with restore
  std::string freeze_cgroup;       // a cgroup (path in CRIU's mount ns) holding exactly the tree
  std::optional<CgroupMode> manage_cgroups_mode;
  std::vector<std::pair<std::string, std::string>> ext_mnt;  // mountpoint in the tree's mount ns -> key
  std::vector<std::string> external;   // raw --external values: "mnt[/x]:k", "tty[88:5]", "pipe:[123]"
  std::vector<std::string> skip_mnt;   // mountpoints not to dump at all
  std::optional<std::string> parent_img;  // relative to the images dir; needs memory tracking
  bool track_mem = false;          // needs soft-dirty (memory_tracking_supported())
  bool auto_dedup = false;
  bool skip_network_lock = true;   // false: CRIU locks the network with iptables (10-35 ms)
  std::optional<uint32_t> ghost_limit;  // bytes of deleted-file content to carry; CRIU's default 1 MiB
  std::optional<uint32_t> timeout;      // seconds CRIU may spend freezing/seizing
  uint32_t empty_ns = 0;           // CLONE_NEW* mask: namespaces dumped without their contents
  bool orphan_pts_master = false;  // a pty slave whose master is outside the tree (a console)
  NotifyHandler notify;            // set: CRIU reports its action-script points to it
};

struct RestoreOptions {
  int images_dir_fd = -1;          // required
  int work_dir_fd = -1;
  std::string log_file = "restore.log";
  int log_level = default_log_level();
  std::string root;                // where the tree's root mount comes from (bind-mounted, MS_REC)
  // Over RPC CRIU always restores detached: the restored root is CRIU's child and is reparented
  // to the init of CRIU's pid namespace when CRIU exits. There is no option for it.
  bool leave_stopped = false;      // tasks end in state T; SIGCONT activates them
  bool tcp_established = false;
  bool ext_unix_sk = false;
  bool shell_job = false;
  bool file_locks = false;
  std::optional<CgroupMode> manage_cgroups_mode;
  std::vector<std::pair<std::string, std::string>> ext_mnt;  // key -> path in CRIU's mount ns
  std::vector<std::string> external;
  std::vector<std::pair<std::string, int>> inherit_fd;     // key -> our fd (kept open in CRIU)
  bool orphan_pts_master = false;  // the master of a restored pty comes back in RestoreResult
  bool skip_network_lock = true;
  std::string lsm_profile;
  std::string lsm_mount_context;
  uint32_t empty_ns = 0;           // CLONE_NEW* mask: namespaces created empty (net: only lo, down)
  std::vector<std::pair<std::string, std::string>> join_ns;  // "ipc"/"uts"/... -> nsfs path to join
  NotifyHandler notify;            // called for every notification (the client always enables them)
};

struct RestoreResult {
  pid_t pid = 0;        // the restored root, as CRIU reports it: in CRIU's pid namespace
  pid_t host_pid = 0;   // the same task in the caller's pid namespace
  UniqueFd pidfd;       // pidfd of the root, taken while it was still CRIU's child (no reuse race)
  UniqueFd pts_master;  // with orphan_pts_master: the pty master CRIU handed over
};

}  // namespace deltabox::criu
