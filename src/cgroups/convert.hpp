#pragma once
// Pure value conversions from linux.resources to the strings cgroup files take, as runc's fs (v1)
// and fs2 (v2) drivers compute them. The OCI spec is written in v1 terms, so v2 needs conversions
// (shares → weight, memory+swap → swap alone, blkio weight → io weight).
#include <cstdint>
#include <string>
#include <string_view>

namespace oci {
struct ThrottleDevice;
struct RdmaResources;
}  // namespace oci

namespace deltabox::cgroups {

// runc's ConvertCPUSharesToCgroupV2Value (1.2, linear): [2, 262144] → [1, 10000]; 0 stays 0
// ("unset"). Out-of-range shares are clamped where Go's unsigned arithmetic would wrap.
uint64_t cpu_shares_to_weight(uint64_t shares);

// runc's ConvertMemorySwapToCgroupV2Value: OCI swap is memory+swap, cgroup2's memory.swap.max
// is swap alone. -1 means unlimited, 0 unset. Throws runc's errors for impossible pairs.
int64_t memory_swap_to_v2(int64_t memory_swap, int64_t memory);

// runc's ConvertBlkIOToIOWeightValue: [10, 1000] → [1, 10000]; 0 stays 0.
uint64_t blkio_weight_to_io_weight(uint16_t weight);

// fs2's numToStr for *.max/*.low files: 0 → "" (leave alone), -1 → "max", else the number.
std::string v2_limit(int64_t value);

// pids.max: a positive limit as is; 0 or negative → "max" (no limit).
std::string pids_max(int64_t limit);

// cpu.max: "<quota|max> <period>", quota ≤ 0 → "max", period 0 → the kernel default 100000.
std::string cpu_max(int64_t quota, uint64_t period);

// "major:minor value" (blkio.throttle.*, blkio.weight_device, io.bfq.weight per device).
std::string device_value(int64_t major, int64_t minor, uint64_t value);
// io.max: "major:minor key=rate", key one of rbps, wbps, riops, wiops.
std::string io_max_line(const oci::ThrottleDevice& device, std::string_view key);
// rdma.max: "<device>[ hca_handle=N][ hca_object=M]".
std::string rdma_max_line(const std::string& device, const oci::RdmaResources& limits);

}  // namespace deltabox::cgroups
