#pragma once
// Where each controller of one container lives, from the Manager's placements: in a v1 hierarchy's
// directory, in the cgroup2 directory, or nowhere. On hybrid hosts a controller goes to its v1
// hierarchy when one is mounted, else to cgroup2 when the kernel offers it there (this machine's
// hugetlb), else nowhere: then asking anything of it fails like runc's fs driver.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroups/cgroup_dir.hpp"
#include "cgroups/controller_files.hpp"
#include "cgroups/probe.hpp"

namespace deltabox::cgroups {

class ControllerMap {
 public:
  explicit ControllerMap(const std::vector<Placement>& placements);
  ControllerMap(const ControllerMap&) = delete;  // ControllerFiles point into it
  ControllerMap& operator=(const ControllerMap&) = delete;

  Layout layout() const;
  const CgroupDir* v1(std::string_view controller) const;
  const CgroupDir* unified() const { return unified_ ? &*unified_ : nullptr; }

  // Files for writing a controller's limits. v1_name names its v1 hierarchy, v2_name its cgroup2
  // controller ("" when cgroup2 has no such controller: net_cls, net_prio). On cgroup2 the first
  // access enables the controller in cgroup.subtree_control of the parents we created.
  ControllerFiles for_writing(std::string_view v1_name, std::string_view v2_name) const;
  // The same for reading statistics: never enables anything; nowhere when not available.
  ControllerFiles for_reading(std::string_view v1_name, std::string_view v2_name) const;

 private:
  ControllerFiles resolve(std::string_view v1_name, std::string_view v2_name, bool enable) const;

  std::vector<CgroupDir> v1_;
  std::optional<CgroupDir> unified_;
};

// Names listed in a cgroup2 directory's cgroup.controllers (empty when the file is absent).
std::vector<std::string> unified_controllers(const std::string& dir);

// Whether cgroup2 `controller` can be used in `dir`: listed in its cgroup.controllers, or made so by
// writing "+controller" to cgroup.subtree_control of each parent between it and the closest
// parent we did not create, if that parent offers it. Parents we did not create are never
// written to.
bool enable_unified_controller(const CgroupDir& dir, const std::string& controller);

}  // namespace deltabox::cgroups
