#pragma once
// linux.resources → cgroup files. The place for the resource-limits issue: each manager's apply()
// forwards here. Until then these accept any Resources and write nothing.
#include <vector>

#include "cgroups/cgroup_dir.hpp"

namespace oci {
struct Resources;
}

namespace deltabox::cgroups {

void apply_v1_resources(const std::vector<CgroupDir>& dirs, const oci::Resources& resources);
// Pure v2 will also need "+controller" written to cgroup.subtree_control of every ancestor
// between the caller's cgroup and the container's (hybrid's cgroup2 has no such controllers).
void apply_v2_resources(const CgroupDir& dir, const oci::Resources& resources);

}  // namespace deltabox::cgroups
