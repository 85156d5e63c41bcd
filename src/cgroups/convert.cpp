#include "cgroups/convert.hpp"

#include <oci/config.hpp>

#include "util/error.hpp"

namespace deltabox::cgroups {

namespace {
constexpr uint64_t kMinShares = 2;
constexpr uint64_t kMaxShares = 262144;  // the kernel's MAX_SHARES (1 << 18)
constexpr uint64_t kDefaultCfsPeriod = 100000;
}  // namespace

uint64_t cpu_shares_to_weight(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares < kMinShares) shares = kMinShares;
  if (shares > kMaxShares) shares = kMaxShares;
  return 1 + ((shares - 2) * 9999) / 262142;
}

int64_t memory_swap_to_v2(int64_t memory_swap, int64_t memory) {
  // v1 compatibility: "memory unlimited, swap not given" means both unlimited.
  if (memory == -1 && memory_swap == 0) return -1;
  if (memory_swap == -1 || memory_swap == 0) return memory_swap;
  if (memory == -1) return memory_swap;
  if (memory == 0) fail("unable to set swap limit without memory limit");
  if (memory < 0) fail("invalid memory value: {}", memory);
  if (memory_swap < memory) fail("memory+swap limit should be >= memory limit");
  return memory_swap - memory;
}

uint64_t blkio_weight_to_io_weight(uint16_t weight) {
  if (weight == 0) return 0;
  // Below 10 Go's unsigned subtraction would wrap; the kernel rejects such weights anyway.
  if (weight < 10) return 1;
  return 1 + (uint64_t{weight} - 10) * 9999 / 990;
}

std::string v2_limit(int64_t value) {
  if (value == 0) return "";
  if (value == -1) return "max";
  return std::to_string(value);
}

std::string pids_max(int64_t limit) { return limit > 0 ? std::to_string(limit) : "max"; }

std::string cpu_max(int64_t quota, uint64_t period) {
  return fmt::format("{} {}", quota > 0 ? std::to_string(quota) : "max", period ? period : kDefaultCfsPeriod);
}

std::string device_value(int64_t major, int64_t minor, uint64_t value) {
  return fmt::format("{}:{} {}", major, minor, value);
}

std::string io_max_line(const oci::ThrottleDevice& device, std::string_view key) {
  return fmt::format("{}:{} {}={}", device.major, device.minor, key, device.rate);
}

std::string rdma_max_line(const std::string& device, const oci::RdmaResources& limits) {
  std::string line = device;
  if (limits.hca_handles) line += fmt::format(" hca_handle={}", *limits.hca_handles);
  if (limits.hca_objects) line += fmt::format(" hca_object={}", *limits.hca_objects);
  return line;
}

}  // namespace deltabox::cgroups
