#pragma once
// Discovers the cgroup hierarchies from /proc/self/mountinfo (where each is mounted and which of
// its cgroups the mount shows) and /proc/self/cgroup (the caller's cgroup in each). Parsing is pure
// so the unit tests can feed this machine's real formats.
#include <string>
#include <vector>

#include "cgroups/hierarchy.hpp"

namespace deltabox::cgroups {

enum class Layout { v1, v2, hybrid };
const char* to_string(Layout layout);
Layout layout_from_string(const std::string& name);

// statfs magic of /sys/fs/cgroup: cgroup2 → v2; otherwise hybrid when /sys/fs/cgroup/unified is a
// cgroup2 mount, else v1.
Layout detect_layout();
// The layout a set of hierarchies amounts to (v1 hierarchies and a cgroup2 one → hybrid).
Layout layout_of(const std::vector<Hierarchy>& hierarchies);

struct CgroupMount {
  std::string root;                        // mountinfo field 4, unescaped
  std::string mount_point;                 // field 5, unescaped
  std::string fstype;                      // "cgroup" or "cgroup2"
  std::vector<std::string> super_options;  // e.g. {"rw", "cpu", "cpuacct"}
  bool operator==(const CgroupMount&) const = default;
};
// Only the cgroup and cgroup2 entries, in mountinfo order.
std::vector<CgroupMount> parse_mountinfo_cgroups(const std::string& text);

struct ProcCgroupEntry {
  int hierarchy_id = 0;
  std::vector<std::string> controllers;  // empty for the cgroup2 line "0::/path"
  std::string path;
  bool operator==(const ProcCgroupEntry&) const = default;
};
std::vector<ProcCgroupEntry> parse_proc_cgroup(const std::string& text);

// Pairs each /proc/self/cgroup line with a mount of its hierarchy (preferring a mount whose root
// contains the caller's cgroup). Hierarchies that are not mounted are left out. Mount order.
std::vector<OwnHierarchy> match_hierarchies(const std::vector<CgroupMount>& mounts,
                                            const std::vector<ProcCgroupEntry>& entries);

// match_hierarchies() over this process's /proc/self/mountinfo and /proc/self/cgroup.
std::vector<OwnHierarchy> probe_hierarchies();

}  // namespace deltabox::cgroups
