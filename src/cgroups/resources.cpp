#include "cgroups/resources.hpp"

#include <algorithm>
#include <string_view>

#include <oci/config.hpp>

#include "cgroups/controllers.hpp"
#include "cgroups/devices_ebpf.hpp"
#include "cgroups/manager.hpp"
#include "cgroups/writers.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox::cgroups {
namespace {

struct ControllerWriter {
  std::string_view v1_name;
  std::string_view v2_name;  // "" when cgroup2 has no such controller
  ResourceWriter v1;
  ResourceWriter v2;  // nullptr with v2_name ""
};

constexpr ControllerWriter kCpuset{"cpuset", "cpuset", set_cpuset, set_cpuset};
// After cpuset and devices, in runc's fs subsystem order.
constexpr ControllerWriter kWriters[] = {
    {"memory", "memory", set_memory_v1, set_memory_v2},
    {"cpu", "cpu", set_cpu_v1, set_cpu_v2},
    {"pids", "pids", set_pids, set_pids},
    {"blkio", "io", set_blkio_v1, set_io_v2},
    {"hugetlb", "hugetlb", set_hugetlb_v1, set_hugetlb_v2},
    {"net_cls", "", set_net_cls_v1, nullptr},
    {"net_prio", "", set_net_prio_v1, nullptr},
    {"rdma", "rdma", set_rdma, set_rdma},
};

void run(const ControllerMap& controllers, const ControllerWriter& writer, const oci::Resources& r) {
  // runc's fs2 driver has no net_cls/net_prio and ignores those fields on pure v2.
  if (!writer.v2 && controllers.layout() == Layout::v2) return;
  auto files = controllers.for_writing(writer.v1_name, writer.v2_name);
  (files.unified() ? writer.v2 : writer.v1)(files, r);
}

// A v1 devices hierarchy takes devices.allow/deny rules; cgroup2 (pure v2, or hybrid without
// the v1 hierarchy) an eBPF filter on the directory.
void set_devices(const ControllerMap& controllers, const oci::Resources& r) {
  const auto rules = device_rules(r);
  const auto* v1 = controllers.v1("devices");
  const auto* unified = controllers.unified();
  if (v1 || !unified) return set_devices_v1(ControllerFiles("devices", v1), rules);
  auto program = device_filter_program(rules);
  attach_device_filter(unified->open_dir().get(), program);
}

void set_unified(const ControllerMap& controllers, const std::map<std::string, std::string>& unified) {
  if (unified.empty()) return;
  const CgroupDir& dir = *controllers.unified();
  const ControllerFiles files("unified", &dir);
  for (const auto& [key, value] : unified) {
    const size_t dot = key.find('.');
    const std::string controller = dot == std::string::npos ? "" : key.substr(0, dot);
    if (!controller.empty() && controller != "cgroup") {
      try {
        enable_unified_controller(dir, controller);
      } catch (const Error&) {  // the write below reports the controller as unavailable
      }
    }
    try {
      files.write_lines(key, value);
    } catch (const Error& e) {
      if (e.code() == EPERM || e.code() == ENOENT) {
        if (dot == std::string::npos)
          fail("unified resource {} must be in the form CONTROLLER.PARAMETER", log::go_quote(key));
        const auto available = unified_controllers(dir.dir());
        if (controller != "cgroup" && std::find(available.begin(), available.end(), controller) == available.end())
          fail("unified resource {} can't be set: controller {} not available", log::go_quote(key),
               log::go_quote(controller));
      }
      fail("unable to set unified resource {}: {}", log::go_quote(key), e.what());
    }
  }
}

}  // namespace

void check_unified(const std::map<std::string, std::string>& unified, bool have_cgroup2) {
  if (unified.empty()) return;
  if (!have_cgroup2) fail("invalid configuration: cannot use unified on cgroup v1");
  for (const auto& [key, value] : unified) {
    if (key.find('/') != std::string::npos)
      fail("unified resource {} must be a file name (no slashes)", log::go_quote(key));
    if (key.empty() || key == "." || key == "..") fail("unified resource {} must be a file name", log::go_quote(key));
  }
}

void set_resources(const ControllerMap& controllers, const oci::Resources& resources, bool with_devices) {
  check_unified(resources.unified, controllers.unified() != nullptr);
  run(controllers, kCpuset, resources);
  if (with_devices) set_devices(controllers, resources);
  for (const auto& writer : kWriters) run(controllers, writer, resources);
  // Last, so that raw cgroup2 values win over the converted OCI fields.
  set_unified(controllers, resources.unified);
}

void Manager::apply(const oci::Resources& resources) {
  if (resources.memory && (resources.memory->kernel || resources.memory->kernel_tcp))
    log::warn("Kernel memory settings are ignored and will be removed");
  const ControllerMap controllers(placements());
  set_resources(controllers, resources, true);
}

oci::Resources Manager::update(const oci::Resources& current, const oci::Resources& changes) {
  auto merged = merge_resources(current, changes);
  const ControllerMap controllers(placements());
  set_resources(controllers, merged, false);
  return merged;
}

}  // namespace deltabox::cgroups
