#pragma once
// Pure path rules: where a container's cgroup goes and the checks that keep every computed path
// strictly below its hierarchy's mount. A runtime that resolves a container cgroup to a hierarchy
// root and then kills or freezes "the container" takes the whole machine with it, so every entry
// point that builds or reloads a Placement goes through validate_placement().
#include <string>
#include <string_view>
#include <vector>

#include "cgroups/hierarchy.hpp"

namespace deltabox::cgroups {

// "/a//b/./c/" → "/a/b/c"; "" → "/". Throws on ".." (refused rather than resolved: a lexical
// resolution would silently turn "../../x" into a path next to, or above, the caller's cgroup).
std::string normalize_cgroup_path(std::string_view path);

// Both arguments normalized absolute paths.
bool is_strictly_below(std::string_view path, std::string_view ancestor);
bool is_at_or_below(std::string_view path, std::string_view ancestor);

// runc fs-driver rules: absolute cgroups_path → as is (relative to the hierarchy root in the
// caller's cgroup namespace); relative → below own_path; empty → own_path/id.
std::string resolve_container_path(const std::string& own_path, const std::string& cgroups_path,
                                   const std::string& id);

// Absolute directory of cgroup `path` through the hierarchy's mount. Throws when the cgroup is not
// strictly below the mount's root (that includes the mount root itself).
std::string cgroup_dir(const Hierarchy& hierarchy, const std::string& path);

// One Placement per hierarchy; throws if any hierarchy's path is refused, including a container
// cgroup that would contain the caller's own cgroup (killing the container would kill the caller).
std::vector<Placement> plan_placements(const std::vector<OwnHierarchy>& hierarchies,
                                       const std::string& cgroups_path, const std::string& id);

// Re-checks everything a Placement promises (used on every load from a state file too): absolute
// normalized mount point, path strictly below the mount root, dir matching path, and each created
// dir strictly below the mount point and an ancestor-or-self of dir.
void validate_placement(const Placement& placement);

}  // namespace deltabox::cgroups
