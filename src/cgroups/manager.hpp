#pragma once
// The container's cgroups behind one interface, whatever the host's layout: v1 (one directory per
// mounted hierarchy), v2 (one cgroup2 directory) or hybrid (both: v1 for controllers, cgroup2 for
// cgroup.freeze/kill/events and CLONE_INTO_CGROUP). for_container() probes the host;
// from_state() rebuilds from to_state() in a later CLI process without probing.
//
// Safety: every directory is validated to be strictly below its hierarchy's mount (never a root,
// no "..", no symlinks: see paths.hpp, cgroup_dir.hpp); only directories create() made are ever
// removed; kill_all() refuses a cgroup holding pid 1 or the calling process.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroups/hierarchy.hpp"
#include "cgroups/probe.hpp"

namespace oci {
struct Resources;
}

namespace deltabox::cgroups {

class OomEvents;

enum class FreezerState { thawed, freezing, frozen };
const char* to_string(FreezerState state);

class Manager {
 public:
  // cgroups_path absolute → that cgroup in every hierarchy (as seen in /proc/self/cgroup terms);
  // relative → below the caller's own cgroup in each hierarchy; empty → "<own cgroup>/<id>".
  // systemd=true ("slice:prefix:name") throws: systemd is not running / driver not supported.
  // Refuses hierarchy roots, "..", and cgroups containing the caller's own cgroup.
  static std::unique_ptr<Manager> for_container(const std::string& cgroups_path, const std::string& id,
                                                bool systemd);
  // Same rules against given hierarchies (tests use a fake cgroupfs in a temporary directory).
  static std::unique_ptr<Manager> for_hierarchies(const std::vector<OwnHierarchy>& hierarchies,
                                                  const std::string& cgroups_path, const std::string& id);
  // Rebuilds from what to_state() returned, re-validating every path (no probing of /proc/self).
  static std::unique_ptr<Manager> from_state(const nlohmann::json& state);
  // {"version":1,"layout":"hybrid","hierarchies":[{"controllers":[..],"mount_point":..,
  //  "mount_root":..,"path":..,"dir":..,"created":[..]}, ..]}: everything later calls need.
  nlohmann::json to_state() const;
  virtual ~Manager() = default;

  // mkdir -p every hierarchy's dir, remembering each dir made (only those may ever be removed).
  // v1 cpuset: fills empty cpuset.cpus/mems from the parent. On failure removes what it made.
  virtual void create() = 0;
  // O_DIRECTORY|O_CLOEXEC fd of the cgroup2 dir for clone3(CLONE_INTO_CGROUP), or -1 without a
  // cgroup2 part; the caller closes it.
  virtual int unified_dir_fd() const = 0;
  // For a single-threaded child right after fork: joins each v1 hierarchy by writing "0" to tasks
  // (moving only the current thread skips the kernel's global threadgroup rwsem, ~10 ms per write
  // here) and the cgroup2 dir via cgroup.procs unless v2_already_joined (CLONE_INTO_CGROUP).
  // Does not allocate on success.
  virtual void enter_self(bool v2_already_joined = false) = 0;
  // Slow path: writes pid to cgroup.procs everywhere.
  virtual void add_process(pid_t pid) = 0;
  // Prefers cgroup2 cgroup.freeze, else the v1 freezer; returns once frozen (throws after a
  // timeout, thawing again).
  virtual void freeze() = 0;
  virtual void thaw() = 0;
  virtual FreezerState freezer_state() const = 0;
  // Every process in the container cgroup and cgroups below it, sorted.
  virtual std::vector<pid_t> pids() const = 0;
  // SIGKILL through cgroup2 cgroup.kill when available; otherwise freeze, signal each, thaw.
  virtual void kill_all(int signal) = 0;
  // Blocks until no process is left; throws Error("timed out waiting for ...") after timeout.
  virtual void wait_empty(std::chrono::milliseconds timeout) = 0;
  virtual bool empty() const = 0;
  // Removes the dirs we created, deepest first; idempotent.
  virtual void destroy() = 0;
  // Container cgroup dir in the hierarchy of `controller` ("memory", "freezer", "systemd" or
  // "name=systemd"; "" for cgroup2); empty if there is none.
  virtual std::string path(const std::string& controller) const = 0;
  virtual Layout layout() const = 0;
  // Every hierarchy's placement, in mount order (mount_cgroupfs and to_state use this).
  virtual std::vector<Placement> placements() const = 0;

  // linux.resources → cgroup files, every field, the way runc's fs/fs2 drivers write them (see
  // resources.hpp): at create, after create() and before the init enters. A field whose
  // controller is missing fails with runc's error. Warns that kernel memory fields are ignored.
  void apply(const oci::Resources& resources);
  // The update verb: writes merge_resources(current, changes) (unset fields keep their current
  // values; devices are left alone, as in runc) and returns it for the state file.
  oci::Resources update(const oci::Resources& current, const oci::Resources& changes);
  // runc's types.Stats JSON for `events` (stats.hpp).
  nlohmann::ordered_json stats_json() const;
  // OOM-kill notifications for `events` (oom.hpp); throws without a memory cgroup.
  std::unique_ptr<OomEvents> oom_events() const;
  // Whether freeze() can work at all (v1 without a freezer hierarchy cannot).
  virtual bool can_freeze() const = 0;

 protected:
  // runc's signalAllProcesses: freeze so nobody forks past us, signal every pid, thaw.
  void signal_each_frozen(int signal);
  // Throws if the cgroup holds pid 1 or this process: a misplaced cgroup, never a container.
  void refuse_if_holding_us(const std::vector<pid_t>& pids) const;
};

// The Manager for these placements: v1, v2 or hybrid by which hierarchies are present.
std::unique_ptr<Manager> make_manager(std::vector<Placement> placements);

// Mounts the container's view of cgroupfs at `target` (see mount.cpp).
void mount_cgroupfs(const std::string& target, const Manager& manager, bool has_cgroupns, unsigned long flags);

}  // namespace deltabox::cgroups
