#pragma once
// linux.resources → cgroup files. Manager::apply (create) and Manager::update (the update verb)
// live in resources.cpp: each controller's writer (writers.hpp) runs against wherever the
// controller lives for this container (controllers.hpp), in runc's fs-driver order, with the
// devices rules (devices.hpp) and linux.resources.unified last.
#include <map>
#include <string>

namespace oci {
struct Resources;
}

namespace deltabox::cgroups {

class ControllerMap;

// What `update` writes: `current` (the container's resources so far) with every field `changes`
// sets replacing the current one, and everything it leaves unset kept. Like runc's update:
// memory.limit -1 without a swap value makes swap -1 too; devices never change (runc cannot update
// them); lists replace lists when given (hugepageLimits and rdma per page size / device, unified
// per key).
oci::Resources merge_resources(const oci::Resources& current, const oci::Resources& changes);

// Refuses what runc refuses before writing anything: unified keys without a cgroup2 hierarchy
// ("invalid configuration: cannot use unified on cgroup v1"), and keys that are not plain file
// names (slashes, "." or "..": they would reach outside the container's directory).
void check_unified(const std::map<std::string, std::string>& unified, bool have_cgroup2);

// Writes `resources` to the container's controllers; `with_devices` false leaves device access
// alone (update).
void set_resources(const ControllerMap& controllers, const oci::Resources& resources, bool with_devices);

}  // namespace deltabox::cgroups
