#pragma once
// Value types naming one cgroup hierarchy and where a container's cgroup sits in it. Plain data:
// every behaviour lives in paths.cpp (pure), cgroup_dir.cpp (filesystem) or the managers.
#include <string>
#include <string_view>
#include <vector>

namespace deltabox::cgroups {

struct Hierarchy {
  // As listed in /proc/self/cgroup: {"cpu", "cpuacct"}, {"name=systemd"}; empty for cgroup2.
  std::vector<std::string> controllers;
  std::string mount_point;       // where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory
  std::string mount_root = "/";  // which cgroup of the hierarchy that mount shows (mountinfo field 4)

  bool unified() const { return controllers.empty(); }
  // "cpu,cpuacct", "name=systemd"; "cgroup2" for the unified hierarchy (for messages).
  std::string name() const;
  // True for "memory" in {"memory"}, and for both "systemd" and "name=systemd" in {"name=systemd"}.
  bool has(std::string_view controller) const;
  bool operator==(const Hierarchy&) const = default;
};

// One hierarchy's share of a container: its cgroup there and which directories we made for it.
struct Placement {
  Hierarchy hierarchy;
  std::string path;  // cgroup path inside the hierarchy, e.g. /process_api/abc/ctr
  std::string dir;   // absolute directory, e.g. /sys/fs/cgroup/memory/process_api/abc/ctr
  // Absolute directories create() made, shallowest first. Only these may ever be removed.
  std::vector<std::string> created;
  bool operator==(const Placement&) const = default;
};

}  // namespace deltabox::cgroups

namespace deltabox::cgroups {

// A hierarchy as seen by the calling process, with the process's own cgroup in it.
struct OwnHierarchy {
  Hierarchy hierarchy;
  std::string own_path;  // from /proc/self/cgroup, e.g. /process_api/abc
  bool operator==(const OwnHierarchy&) const = default;
};

}  // namespace deltabox::cgroups
