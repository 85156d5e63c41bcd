// linux.resources on cgroup v1, after runc's libcontainer/cgroups/fs.
#include <limits>

#include <oci/config.hpp>

#include "cgroups/convert.hpp"
#include "cgroups/writers.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

constexpr uint64_t kSwappinessUnset = std::numeric_limits<uint64_t>::max();  // -1 in the JSON

void set_memory_limit(const ControllerFiles& files, int64_t limit) {
  if (limit == 0) return;
  try {
    files.write("memory.limit_in_bytes", std::to_string(limit));
  } catch (const Error& e) {
    if (e.code() != EBUSY) throw;
    // EBUSY: the new limit is below what the cgroup uses; say so in numbers.
    fail("unable to set memory limit to {} (current usage: {}, peak usage: {})", limit,
         files.read_uint("memory.usage_in_bytes"), files.read_uint("memory.max_usage_in_bytes"));
  }
}

void set_memsw_limit(const ControllerFiles& files, int64_t limit) {
  if (limit != 0) files.write("memory.memsw.limit_in_bytes", std::to_string(limit));
}

// memsw (memory+swap) must never be below memory: when raising both, swap goes first.
void set_memory_and_swap(const ControllerFiles& files, int64_t memory, int64_t swap) {
  // "Unlimited memory, swap not given" means both unlimited, if swap accounting exists.
  if (memory == -1 && swap == 0 && files.has("memory.memsw.limit_in_bytes")) swap = -1;
  if (memory != 0 && swap != 0) {
    const uint64_t current = files.read_uint("memory.limit_in_bytes");
    if (swap == -1 || current < static_cast<uint64_t>(swap)) {
      set_memsw_limit(files, swap);
      set_memory_limit(files, memory);
      return;
    }
  }
  set_memory_limit(files, memory);
  set_memsw_limit(files, swap);
}

// cpu.shares is clamped by the kernel; runc reads it back to report the clamping as an error.
void set_shares(const ControllerFiles& files, uint64_t shares) {
  files.write("cpu.shares", std::to_string(shares));
  const uint64_t effective = files.read_uint("cpu.shares");
  if (shares > effective) fail("the maximum allowed cpu-shares is {}", effective);
  if (shares < effective) fail("the minimum allowed cpu-shares is {}", effective);
}

// Writes `value` to `file` unless the kernel refuses it with EINVAL while `retry_later` (the
// paired value it depends on is about to change): then returns the value to write again after it.
std::string write_or_defer(const ControllerFiles& files, const char* file, const std::string& value, bool retry_later,
                           bool ignore_missing = false) {
  try {
    files.write(file, value);
    return "";
  } catch (const Error& e) {
    if (ignore_missing && e.code() == ENOENT) return "";
    if (e.code() != EINVAL || !retry_later) throw;
    return value;
  }
}

// Real-time bandwidth: period and runtime are validated against each other, so a period the
// kernel refuses is retried once the runtime is in place.
void set_rt_sched(const ControllerFiles& files, const oci::CpuResources& cpu) {
  const int64_t runtime = cpu.realtime_runtime.value_or(0);
  std::string period;
  if (auto p = cpu.realtime_period.value_or(0))
    period = write_or_defer(files, "cpu.rt_period_us", std::to_string(p), runtime != 0);
  if (runtime == 0) return;
  files.write("cpu.rt_runtime_us", std::to_string(runtime));
  if (!period.empty()) files.write("cpu.rt_period_us", period);
}

void set_weight_devices(const ControllerFiles& files, const oci::BlockIoResources& b, const char* weight_device) {
  for (const auto& wd : b.weight_device) {
    if (auto w = wd.weight.value_or(0)) files.write(weight_device, device_value(wd.major, wd.minor, w));
    if (auto lw = wd.leaf_weight.value_or(0))
      files.write("blkio.leaf_weight_device", device_value(wd.major, wd.minor, lw));
  }
}

void set_throttles(const ControllerFiles& files, const std::vector<oci::ThrottleDevice>& devices, const char* file) {
  for (const auto& d : devices) files.write(file, device_value(d.major, d.minor, d.rate));
}

}  // namespace

void set_memory_v1(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.memory) return;
  const auto& m = *r.memory;
  set_memory_and_swap(files, m.limit.value_or(0), m.swap.value_or(0));
  // kernel and kernelTCP are ignored (kmem accounting is deprecated; runc 1.1+ warns at create).
  if (auto v = m.reservation.value_or(0)) files.write("memory.soft_limit_in_bytes", std::to_string(v));
  if (m.disable_oom_killer.value_or(false)) files.write("memory.oom_control", "1");
  // Kernels have been hierarchical only for a long time: "1" is accepted, "0" is not.
  if (m.use_hierarchy.value_or(false)) files.write("memory.use_hierarchy", "1");
  const uint64_t swappiness = m.swappiness.value_or(kSwappinessUnset);
  if (swappiness == kSwappinessUnset) return;
  if (swappiness > 100) fail("invalid value:{}. valid memory swappiness range is 0-100", swappiness);
  files.write("memory.swappiness", std::to_string(swappiness));
}

void set_cpu_v1(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.cpu) return;
  const auto& c = *r.cpu;
  if (auto shares = c.shares.value_or(0)) set_shares(files, shares);
  const int64_t quota = c.quota.value_or(0);
  // A period or burst refused because of the current quota is written again after the quota.
  std::string period, burst;
  if (auto p = c.period.value_or(0)) period = write_or_defer(files, "cpu.cfs_period_us", std::to_string(p), quota != 0);
  if (c.burst)  // absent on kernels before 5.14: ignored there
    burst = write_or_defer(files, "cpu.cfs_burst_us", std::to_string(*c.burst), quota != 0, true);
  if (quota != 0) {
    files.write("cpu.cfs_quota_us", std::to_string(quota));
    if (!period.empty()) files.write("cpu.cfs_period_us", period);
    if (!burst.empty()) files.write("cpu.cfs_burst_us", burst);
  }
  if (c.idle) files.write("cpu.idle", std::to_string(*c.idle));
  set_rt_sched(files, c);
}

void set_blkio_v1(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.block_io) return;
  const auto& b = *r.block_io;
  const bool wants_weight = b.weight.value_or(0) || !b.weight_device.empty();
  // CFQ's files, or BFQ's where CFQ is gone (Linux 5.0+).
  const bool cfq = wants_weight && files.has("blkio.weight");
  const char* weight = cfq ? "blkio.weight" : "blkio.bfq.weight";
  const char* weight_device = cfq ? "blkio.weight_device" : "blkio.bfq.weight_device";
  if (auto w = b.weight.value_or(0)) files.write(weight, std::to_string(w));
  if (auto lw = b.leaf_weight.value_or(0)) files.write("blkio.leaf_weight", std::to_string(lw));
  set_weight_devices(files, b, weight_device);
  set_throttles(files, b.throttle_read_bps_device, "blkio.throttle.read_bps_device");
  set_throttles(files, b.throttle_write_bps_device, "blkio.throttle.write_bps_device");
  set_throttles(files, b.throttle_read_iops_device, "blkio.throttle.read_iops_device");
  set_throttles(files, b.throttle_write_iops_device, "blkio.throttle.write_iops_device");
}

void set_hugetlb_v1(const ControllerFiles& files, const oci::Resources& r) { set_hugetlb(files, r, ".limit_in_bytes"); }

void set_net_cls_v1(const ControllerFiles& files, const oci::Resources& r) {
  if (r.network && r.network->class_id.value_or(0))
    files.write("net_cls.classid", std::to_string(*r.network->class_id));
}

void set_net_prio_v1(const ControllerFiles& files, const oci::Resources& r) {
  if (!r.network) return;
  for (const auto& p : r.network->priorities)
    files.write("net_prio.ifpriomap", fmt::format("{} {}", p.name, p.priority));
}

void set_devices_v1(const ControllerFiles& files, const std::vector<DeviceRule>& rules) {
  const auto current = DeviceEmulator::from_list(files.read("devices.list"));
  const auto target = DeviceEmulator::from_rules(rules);
  for (const auto& rule : current.transition(target))
    files.write(rule.allow ? "devices.allow" : "devices.deny", cgroup_string(rule));
  // A deny-list's exceptions do not show in devices.list, so only its mode can be checked.
  const auto after = DeviceEmulator::from_list(files.read("devices.list"));
  if (!target.deny_list() && after != target) fail("resulting devices cgroup doesn't precisely match target");
  if (target.deny_list() != after.deny_list()) fail("resulting devices cgroup doesn't match target mode");
}

}  // namespace deltabox::cgroups
