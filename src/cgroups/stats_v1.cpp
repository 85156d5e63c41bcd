// Statistics from cgroup v1 hierarchies, after runc's fs subsystems' GetStats.
#include <unistd.h>

#include <charconv>
#include <sstream>

#include "cgroups/stats.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

constexpr uint64_t kNanosecondsPerSecond = 1000000000;

// memory.<kind>.{usage_in_bytes,max_usage_in_bytes,failcnt,limit_in_bytes}; swap (memsw) and
// kmem accounting may be compiled out, so only plain memory is required.
MemoryData memory_data(const ControllerFiles& files, std::string_view kind) {
  const std::string prefix = kind.empty() ? "memory" : "memory." + std::string(kind);
  MemoryData data;
  auto usage = read_optional(files, prefix + ".usage_in_bytes");
  if (!usage) {
    if (!kind.empty()) return data;
    fail("failed to parse {}.usage_in_bytes - no such file", prefix);
  }
  data.usage = parse_cgroup_uint(*usage, files.path(prefix + ".usage_in_bytes"));
  data.max_usage = files.read_uint(prefix + ".max_usage_in_bytes");
  data.failcnt = files.read_uint(prefix + ".failcnt");
  data.limit = files.read_uint(prefix + ".limit_in_bytes");
  return data;
}

std::vector<uint64_t> parse_numbers(std::string_view text, const std::string& where) {
  std::vector<uint64_t> out;
  std::istringstream words{std::string(text)};
  for (std::string w; words >> w;) out.push_back(parse_cgroup_uint(w, where));
  return out;
}

// blkio lines: "8:0 Read 123", "8:0 Total 456", "Total 789" (skipped), or "8:0 123" (no op).
std::vector<BlkioEntry> parse_blkio(std::string_view text, const std::string& where) {
  std::vector<BlkioEntry> out;
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    for (char& c : line)
      if (c == ':') c = ' ';
    std::istringstream words(line);
    std::vector<std::string> f;
    for (std::string w; words >> w;) f.push_back(w);
    if (f.empty()) continue;
    if (f.size() < 3) {
      if (f.size() == 2 && f[0] == "Total") continue;
      fail("{}: malformed line {:?}", where, line);
    }
    BlkioEntry e{.major = parse_cgroup_uint(f[0], where), .minor = parse_cgroup_uint(f[1], where)};
    if (f.size() == 4) e.op = f[2];
    e.value = parse_cgroup_uint(f[f.size() == 4 ? 3 : 2], where);
    out.push_back(std::move(e));
  }
  return out;
}

using BlkioList = std::vector<BlkioEntry> CgroupStats::Blkio::*;
struct BlkioFile {
  const char* name;
  BlkioList list;
};

// Tried in order; the first group whose first file has entries wins (BFQ with debug stats, BFQ,
// CFQ, then the throttling layer's counters, which are always there).
const std::vector<std::vector<BlkioFile>>& blkio_groups() {
  using B = CgroupStats::Blkio;
  static const std::vector<std::vector<BlkioFile>> groups = {
      {{"blkio.bfq.sectors_recursive", &B::sectors},
       {"blkio.bfq.io_service_time_recursive", &B::service_time},
       {"blkio.bfq.io_wait_time_recursive", &B::wait_time},
       {"blkio.bfq.io_merged_recursive", &B::merged},
       {"blkio.bfq.io_queued_recursive", &B::queued},
       {"blkio.bfq.time_recursive", &B::time},
       {"blkio.bfq.io_serviced_recursive", &B::serviced},
       {"blkio.bfq.io_service_bytes_recursive", &B::service_bytes}},
      {{"blkio.bfq.io_serviced_recursive", &B::serviced}, {"blkio.bfq.io_service_bytes_recursive", &B::service_bytes}},
      {{"blkio.sectors_recursive", &B::sectors},
       {"blkio.io_service_time_recursive", &B::service_time},
       {"blkio.io_wait_time_recursive", &B::wait_time},
       {"blkio.io_merged_recursive", &B::merged},
       {"blkio.io_queued_recursive", &B::queued},
       {"blkio.time_recursive", &B::time},
       {"blkio.io_serviced_recursive", &B::serviced},
       {"blkio.io_service_bytes_recursive", &B::service_bytes}},
      {{"blkio.throttle.io_serviced_recursive", &B::serviced},
       {"blkio.throttle.io_service_bytes_recursive", &B::service_bytes}},
      {{"blkio.throttle.io_serviced", &B::serviced}, {"blkio.throttle.io_service_bytes", &B::service_bytes}},
  };
  return groups;
}

std::vector<BlkioEntry> read_blkio_file(const ControllerFiles& files, const char* name) {
  auto text = read_optional(files, name);
  return text ? parse_blkio(*text, files.path(name)) : std::vector<BlkioEntry>{};
}

}  // namespace

void read_cpuset_v1(const ControllerFiles& files, CgroupStats& stats) {
  auto& c = stats.cpuset;
  if (auto t = read_optional(files, "cpuset.cpus")) c.cpus = parse_cpu_list(*t);
  if (auto t = read_optional(files, "cpuset.mems")) c.mems = parse_cpu_list(*t);
  const std::pair<const char*, uint64_t*> flags[] = {
      {"cpuset.cpu_exclusive", &c.cpu_exclusive},           {"cpuset.mem_hardwall", &c.mem_hardwall},
      {"cpuset.mem_exclusive", &c.mem_exclusive},           {"cpuset.memory_migrate", &c.memory_migrate},
      {"cpuset.memory_spread_page", &c.memory_spread_page}, {"cpuset.memory_spread_slab", &c.memory_spread_slab},
      {"cpuset.memory_pressure", &c.memory_pressure},       {"cpuset.sched_load_balance", &c.sched_load_balance}};
  for (const auto& [name, value] : flags)
    if (auto t = read_optional(files, name)) *value = parse_cgroup_uint(*t, files.path(name));
  if (auto t = read_optional(files, "cpuset.sched_relax_domain_level")) {
    std::string_view v = *t;
    while (!v.empty() && v.back() == '\n') v.remove_suffix(1);
    std::from_chars(v.data(), v.data() + v.size(), c.sched_relax_domain_level);
  }
}

void read_memory_v1(const ControllerFiles& files, CgroupStats& stats) {
  auto stat = read_optional(files, "memory.stat");
  if (!stat) return;
  auto& m = stats.memory;
  for (auto& [key, value] : parse_key_values(*stat, files.path("memory.stat"))) m.raw[key] = value;
  m.cache = m.raw.count("cache") ? m.raw["cache"] : 0;
  m.usage = memory_data(files, "");
  m.swap = memory_data(files, "memsw");
  m.kernel = memory_data(files, "kmem");
  m.kernel_tcp = memory_data(files, "kmem.tcp");
}

void read_cpu_v1(const ControllerFiles& files, CgroupStats& stats) {
  auto text = read_optional(files, "cpu.stat");
  if (!text) return;
  auto& c = stats.cpu;
  for (const auto& [key, value] : parse_key_values(*text, files.path("cpu.stat"))) {
    if (key == "nr_periods") c.periods = value;
    if (key == "nr_throttled") c.throttled_periods = value;
    if (key == "throttled_time") c.throttled_time = value;
  }
}

void read_cpuacct_v1(const ControllerFiles& files, CgroupStats& stats) {
  auto& c = stats.cpu;
  // cpuacct.stat counts USER_HZ ticks.
  const uint64_t ticks = static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  for (const auto& [key, value] : parse_key_values(files.read("cpuacct.stat"), files.path("cpuacct.stat"))) {
    if (key == "user") c.user = value * kNanosecondsPerSecond / ticks;
    if (key == "system") c.kernel = value * kNanosecondsPerSecond / ticks;
  }
  c.total = files.read_uint("cpuacct.usage");
  c.percpu = parse_numbers(files.read("cpuacct.usage_percpu"), files.path("cpuacct.usage_percpu"));
  // "cpu user system" header, then one line per cpu in nanoseconds (Linux 4.7+).
  auto all = read_optional(files, "cpuacct.usage_all");
  if (!all) return;
  std::istringstream lines(*all);
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    auto n = parse_numbers(line, files.path("cpuacct.usage_all"));
    if (n.size() != 3) continue;
    c.percpu_user.push_back(n[1]);
    c.percpu_kernel.push_back(n[2]);
  }
}

void read_pids_v1(const ControllerFiles& files, CgroupStats& stats) {
  stats.pids.current = files.read_uint("pids.current");
  const uint64_t max = files.read_uint("pids.max");
  stats.pids.limit = max == UINT64_MAX ? 0 : max;  // "max": no limit, reported as 0
}

void read_blkio_v1(const ControllerFiles& files, CgroupStats& stats) {
  for (const auto& group : blkio_groups()) {
    auto first = read_blkio_file(files, group.front().name);
    if (first.empty()) continue;
    stats.blkio.*(group.front().list) = std::move(first);
    for (size_t i = 1; i < group.size(); ++i) stats.blkio.*(group[i].list) = read_blkio_file(files, group[i].name);
    return;
  }
}

void read_hugetlb_v1(const ControllerFiles& files, CgroupStats& stats) {
  for (const auto& size : hugepage_sizes()) {
    const auto prefix = "hugetlb." + size;
    stats.hugetlb[size] = {.usage = files.read_uint(prefix + ".usage_in_bytes"),
                           .max_usage = files.read_uint(prefix + ".max_usage_in_bytes"),
                           .failcnt = files.read_uint(prefix + ".failcnt")};
  }
}

}  // namespace deltabox::cgroups
