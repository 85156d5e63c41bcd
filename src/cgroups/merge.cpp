// merge_resources: the update verb's "change what the user gave, keep the rest".
#include <algorithm>

#include <oci/config.hpp>

#include "cgroups/resources.hpp"

namespace deltabox::cgroups {
namespace {

template <typename T>
void take(std::optional<T>& into, const std::optional<T>& from) {
  if (from) into = from;
}

template <typename T>
void take(std::vector<T>& into, const std::vector<T>& from) {
  if (!from.empty()) into = from;
}

// Applies `merge_fields` to the current object, creating it when only the update has one.
template <typename T, typename F>
void take_object(std::optional<T>& into, const std::optional<T>& from, F merge_fields) {
  if (!from) return;
  if (!into) into.emplace();
  merge_fields(*into, *from);
}

void merge_memory(oci::MemoryResources& m, const oci::MemoryResources& u) {
  take(m.limit, u.limit);
  take(m.reservation, u.reservation);
  take(m.swap, u.swap);
  take(m.kernel, u.kernel);
  take(m.kernel_tcp, u.kernel_tcp);
  take(m.swappiness, u.swappiness);
  take(m.disable_oom_killer, u.disable_oom_killer);
  take(m.use_hierarchy, u.use_hierarchy);
  take(m.check_before_update, u.check_before_update);
  // runc: an unlimited memory without an explicit swap means unlimited swap too.
  if (u.limit == -1 && !u.swap) m.swap = -1;
}

void merge_cpu(oci::CpuResources& c, const oci::CpuResources& u) {
  take(c.shares, u.shares);
  take(c.quota, u.quota);
  take(c.burst, u.burst);
  take(c.period, u.period);
  take(c.realtime_runtime, u.realtime_runtime);
  take(c.realtime_period, u.realtime_period);
  take(c.cpus, u.cpus);
  take(c.mems, u.mems);
  take(c.idle, u.idle);
}

void merge_block_io(oci::BlockIoResources& b, const oci::BlockIoResources& u) {
  take(b.weight, u.weight);
  take(b.leaf_weight, u.leaf_weight);
  take(b.weight_device, u.weight_device);
  take(b.throttle_read_bps_device, u.throttle_read_bps_device);
  take(b.throttle_write_bps_device, u.throttle_write_bps_device);
  take(b.throttle_read_iops_device, u.throttle_read_iops_device);
  take(b.throttle_write_iops_device, u.throttle_write_iops_device);
}

void merge_network(oci::NetworkResources& n, const oci::NetworkResources& u) {
  take(n.class_id, u.class_id);
  take(n.priorities, u.priorities);
}

void merge_hugepages(std::vector<oci::HugepageLimit>& limits, const std::vector<oci::HugepageLimit>& updates) {
  for (const auto& u : updates) {
    auto it = std::find_if(limits.begin(), limits.end(), [&](const auto& h) { return h.page_size == u.page_size; });
    if (it == limits.end())
      limits.push_back(u);
    else
      *it = u;
  }
}

}  // namespace

oci::Resources merge_resources(const oci::Resources& current, const oci::Resources& changes) {
  oci::Resources out = current;
  take_object(out.memory, changes.memory, merge_memory);
  take_object(out.cpu, changes.cpu, merge_cpu);
  take(out.pids, changes.pids);
  take_object(out.block_io, changes.block_io, merge_block_io);
  merge_hugepages(out.hugepage_limits, changes.hugepage_limits);
  take_object(out.network, changes.network, merge_network);
  for (const auto& [device, limits] : changes.rdma) out.rdma[device] = limits;
  for (const auto& [key, value] : changes.unified) out.unified[key] = value;
  return out;
}

}  // namespace deltabox::cgroups
