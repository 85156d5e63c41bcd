#pragma once
// One controller's share of linux.resources, written to its files the way runc's fs (v1) and fs2
// (v2) drivers write it: same files, values, order and errors. Each writer only touches its files
// for the fields that are set, so a controller that is missing (ControllerFiles without a
// directory) only fails when the config asks something of it.
#include <string_view>
#include <vector>

#include "cgroups/controller_files.hpp"
#include "cgroups/devices.hpp"

namespace oci {
struct Resources;
}

namespace deltabox::cgroups {

using ResourceWriter = void (*)(const ControllerFiles&, const oci::Resources&);

// Same files on v1 and v2 (common_resources.cpp).
void set_cpuset(const ControllerFiles& files, const oci::Resources& resources);
void set_pids(const ControllerFiles& files, const oci::Resources& resources);
void set_rdma(const ControllerFiles& files, const oci::Resources& resources);
// hugetlb.<size><suffix> and its ".rsvd" twin: suffix ".limit_in_bytes" on v1, ".max" on v2.
void set_hugetlb(const ControllerFiles& files, const oci::Resources& resources, std::string_view suffix);

// v1 (v1_resources.cpp).
void set_memory_v1(const ControllerFiles& files, const oci::Resources& resources);
void set_cpu_v1(const ControllerFiles& files, const oci::Resources& resources);
void set_blkio_v1(const ControllerFiles& files, const oci::Resources& resources);
void set_hugetlb_v1(const ControllerFiles& files, const oci::Resources& resources);
void set_net_cls_v1(const ControllerFiles& files, const oci::Resources& resources);
void set_net_prio_v1(const ControllerFiles& files, const oci::Resources& resources);
// Writes the minimal devices.deny/devices.allow transition from what devices.list shows to
// `rules`, then checks devices.list shows exactly the result.
void set_devices_v1(const ControllerFiles& files, const std::vector<DeviceRule>& rules);

// v2 (v2_resources.cpp).
void set_memory_v2(const ControllerFiles& files, const oci::Resources& resources);
void set_cpu_v2(const ControllerFiles& files, const oci::Resources& resources);
void set_io_v2(const ControllerFiles& files, const oci::Resources& resources);
void set_hugetlb_v2(const ControllerFiles& files, const oci::Resources& resources);

}  // namespace deltabox::cgroups
