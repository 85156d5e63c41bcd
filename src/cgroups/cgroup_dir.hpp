#pragma once
// One container cgroup directory in one hierarchy, with the filesystem operations the managers
// need. Constructing it validates the Placement (strictly below the mount, see paths.hpp), and the
// destructive operations (rmdir, and the freeze/kill writes done through write_checked) first
// re-resolve the directory on disk so a symlink or a swapped mount cannot redirect them to a
// hierarchy root.
#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroups/hierarchy.hpp"
#include "util/fd.hpp"

namespace deltabox::cgroups {

class CgroupDir {
 public:
  explicit CgroupDir(Placement placement);

  const Placement& placement() const { return placement_; }
  const Hierarchy& hierarchy() const { return placement_.hierarchy; }
  const std::string& dir() const { return placement_.dir; }
  std::string file(std::string_view name) const;

  // Called top-down for every directory on the way from the mount to dir (existing or new), with
  // O_PATH fds of it and its parent: v1 cpuset uses it to fill empty cpuset.cpus/mems.
  using PrepareHook = std::function<void(int parent_fd, int dir_fd)>;
  // mkdir -p below the mount point, never following symlinks; remembers each directory it made.
  // On failure removes what it made and rethrows.
  void create(const PrepareHook& prepare = {});
  // Removes the container cgroup (with any sub-cgroups the container made below it) if we created
  // it, then the parents we created while they are empty. Missing directories are fine; a parent
  // still in use (EBUSY/ENOTEMPTY: shared with another container) is left alone.
  void remove();

  std::string read(std::string_view name) const;
  // Plain write, for the hot paths and non-destructive files.
  void write(std::string_view name, std::string_view data) const;
  // verify_on_disk() first: for writes that freeze, kill or move processes.
  void write_checked(std::string_view name, std::string_view data) const;
  bool has(std::string_view name) const;
  bool exists() const;
  // Every process in the cgroup and its sub-cgroups, sorted; empty when the directory is gone.
  std::vector<pid_t> procs() const;
  UniqueFd open_dir() const;  // O_DIRECTORY|O_CLOEXEC

  // Throws unless `path` (dir or a created ancestor) resolves on disk to exactly the expected place
  // strictly below the resolved mount point. Returns false if it does not exist.
  bool verify_on_disk(const std::string& path) const;
  void verify_on_disk() const;

 private:
  void remove_leaf();
  bool remove_parent(const std::string& path);
  Placement placement_;
};

// open(O_WRONLY) + write + close without allocating on success: safe right after fork().
void write_raw(const char* path, std::string_view data);

}  // namespace deltabox::cgroups
