// linux.resources on cgroup v2, after runc's libcontainer/cgroups/fs2: the OCI fields are v1
// concepts, converted where v2 differs (convert.hpp). Fields v2 has no file for (swappiness,
// disableOOMKiller, realtime*, leafWeight) are ignored there, as runc ignores them.
#include <charconv>

#include <oci/config.hpp>

#include "cgroups/convert.hpp"
#include "cgroups/writers.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox::cgroups {
namespace {

// memory.checkBeforeUpdate: refuse a limit at or below the current usage instead of letting the
// OOM killer enforce it. Best effort: an unreadable usage does not block the update.
void check_memory_usage(const ControllerFiles& files, int64_t memory, int64_t swap) {
  if (memory <= 0 && swap <= 0) return;
  uint64_t usage = 0;
  try {
    usage = files.read_uint("memory.current");
  } catch (const Error&) {
    return;
  }
  if (swap > 0 && static_cast<uint64_t>(swap) <= usage) fail("rejecting memory+swap limit {} <= usage {}", swap, usage);
  if (memory > 0 && static_cast<uint64_t>(memory) <= usage)
    fail("rejecting memory limit {} <= usage {}", memory, usage);
}

// io.bfq.weight reads back a bare number on kernels without per-device BFQ weights (before 5.4).
bool bfq_per_device_weights(const ControllerFiles& files) {
  auto text = files.read("io.bfq.weight");
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return !(ec == std::errc() && end == text.data() + text.size());
}

void set_io_max(const ControllerFiles& files, const std::vector<oci::ThrottleDevice>& devices, std::string_view key) {
  for (const auto& d : devices) files.write("io.max", io_max_line(d, key));
}

}  // namespace

void set_memory_v2(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.memory) return;
  const auto& m = *r.memory;
  const int64_t memory = m.limit.value_or(0), swap = m.swap.value_or(0), reservation = m.reservation.value_or(0);
  if (memory == 0 && swap == 0 && reservation == 0) return;
  if (m.check_before_update.value_or(false)) check_memory_usage(files, memory, swap);
  const int64_t swap_only = memory_swap_to_v2(swap, memory);
  const std::string swap_max = swap_only == 0 && swap > 0 ? std::string("0")  // memory == memory+swap: no swap
                                                          : v2_limit(swap_only);
  if (!swap_max.empty()) {
    try {
      files.write("memory.swap.max", swap_max);
    } catch (const Error& e) {
      // Without swap accounting there is nothing to disable or leave unlimited.
      if (e.code() != ENOENT || (swap_max != "max" && swap_max != "0")) throw;
    }
  }
  if (auto v = v2_limit(memory); !v.empty()) files.write("memory.max", v);
  if (auto v = v2_limit(reservation); !v.empty()) files.write("memory.low", v);
}

void set_cpu_v2(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.cpu) return;
  const auto& c = *r.cpu;
  const uint64_t weight = cpu_shares_to_weight(c.shares.value_or(0));
  const int64_t quota = c.quota.value_or(0);
  const uint64_t period = c.period.value_or(0);
  if (c.idle) files.write("cpu.idle", std::to_string(*c.idle));
  if (weight) files.write("cpu.weight", std::to_string(weight));
  // A burst above what the old quota allows is refused (EINVAL): write it again after cpu.max.
  std::string burst;
  if (c.burst) {
    burst = std::to_string(*c.burst);
    try {
      files.write("cpu.max.burst", burst);
      burst.clear();
    } catch (const Error& e) {
      if (e.code() != EINVAL || quota == 0) throw;
    }
  }
  if (quota == 0 && period == 0) return;
  files.write("cpu.max", cpu_max(quota, period));
  if (!burst.empty()) files.write("cpu.max.burst", burst);
}

void set_io_v2(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.block_io) return;
  const auto& b = *r.block_io;
  const uint16_t weight = b.weight.value_or(0);
  // BFQ takes the v1 weight range as is; without it io.weight needs the range converted.
  const bool bfq = (weight || !b.weight_device.empty()) && files.has("io.bfq.weight");
  if (weight) {
    if (bfq)
      files.write("io.bfq.weight", std::to_string(weight));
    else
      files.write("io.weight", std::to_string(blkio_weight_to_io_weight(weight)));
  }
  if (bfq && !b.weight_device.empty() && bfq_per_device_weights(files)) {
    for (const auto& wd : b.weight_device) {
      const auto line = device_value(wd.major, wd.minor, wd.weight.value_or(0));
      try {
        files.write("io.bfq.weight", line + "\n");
      } catch (const Error& e) {
        throw Error(fmt::format("setting device weight {}: write {}", log::go_quote(line), files.path("io.bfq.weight")),
                    e.code());
      }
    }
  }
  set_io_max(files, b.throttle_read_bps_device, "rbps");
  set_io_max(files, b.throttle_write_bps_device, "wbps");
  set_io_max(files, b.throttle_read_iops_device, "riops");
  set_io_max(files, b.throttle_write_iops_device, "wiops");
}

void set_hugetlb_v2(const ControllerFiles& files, const oci::Resources& r) { set_hugetlb(files, r, ".max"); }

}  // namespace deltabox::cgroups
