// Statistics from a cgroup2 directory, after runc's fs2 stat* functions: reported in v1's terms
// (nanoseconds, mem+swap, Read/Write blkio entries) so consumers need not care.
#include <algorithm>
#include <limits>
#include <sstream>

#include "cgroups/stats.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

// memory[.kind].{current,max,peak}; peak exists from Linux 5.19 (swap's from 6.5).
MemoryData memory_data(const ControllerFiles& files, std::string_view kind) {
  const std::string prefix = kind.empty() ? "memory" : "memory." + std::string(kind);
  MemoryData data;
  auto current = read_optional(files, prefix + ".current");
  if (!current) {
    if (!kind.empty()) return data;  // no swap accounting
    fail("open {}: no such file or directory", files.path(prefix + ".current"));
  }
  data.usage = parse_cgroup_uint(*current, files.path(prefix + ".current"));
  data.limit = files.read_uint(prefix + ".max");
  if (auto peak = read_optional(files, prefix + ".peak"))
    data.max_usage = parse_cgroup_uint(*peak, files.path(prefix + ".peak"));
  return data;
}

std::optional<Psi> read_psi(const ControllerFiles& files, const char* file) {
  auto text = read_optional(files, file);
  if (!text) return std::nullopt;
  return parse_psi(*text);
}

uint64_t saturating_add(uint64_t a, uint64_t b) { return a > kUnlimited - b ? kUnlimited : a + b; }

}  // namespace

void read_memory_v2(const ControllerFiles& files, CgroupStats& stats) {
  auto stat = read_optional(files, "memory.stat");
  if (!stat) return;  // memory controller not enabled here
  auto& m = stats.memory;
  for (auto& [key, value] : parse_key_values(*stat, files.path("memory.stat"))) m.raw[key] = value;
  m.cache = m.raw.count("file") ? m.raw["file"] : 0;
  m.usage = memory_data(files, "");
  // v1 reports swap as memory+swap; v2 counts swap alone, so add memory for v1 compatibility.
  m.swap = memory_data(files, "swap");
  m.swap.usage += m.usage.usage;
  if (m.swap.limit != kUnlimited) m.swap.limit = saturating_add(m.swap.limit, m.usage.limit);
  m.swap.max_usage = 0;  // a mem+swap peak cannot be derived from the two peaks
  m.psi = read_psi(files, "memory.pressure");
}

void read_cpu_v2(const ControllerFiles& files, CgroupStats& stats) {
  auto text = read_optional(files, "cpu.stat");
  if (!text) return;
  auto& c = stats.cpu;
  for (const auto& [key, value] : parse_key_values(*text, files.path("cpu.stat"))) {
    if (key == "usage_usec") c.total = value * 1000;
    if (key == "user_usec") c.user = value * 1000;
    if (key == "system_usec") c.kernel = value * 1000;
    if (key == "nr_periods") c.periods = value;
    if (key == "nr_throttled") c.throttled_periods = value;
    if (key == "throttled_usec") c.throttled_time = value * 1000;
  }
  c.psi = read_psi(files, "cpu.pressure");
}

void read_pids_v2(const ControllerFiles& files, CgroupStats& stats) {
  auto current = read_optional(files, "pids.current");
  if (!current) {
    // Without the pids controller, count the members instead.
    auto procs = files.read("cgroup.procs");
    stats.pids.current = static_cast<uint64_t>(std::count(procs.begin(), procs.end(), '\n'));
    stats.pids.limit = 0;
    return;
  }
  stats.pids.current = parse_cgroup_uint(*current, files.path("pids.current"));
  const uint64_t max = files.read_uint("pids.max");
  stats.pids.limit = max == kUnlimited ? 0 : max;
}

void read_io_v2(const ControllerFiles& files, CgroupStats& stats) {
  auto text = read_optional(files, "io.stat");
  auto& b = stats.blkio;
  if (text) {
    // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0": bytes and ios map to v1's tables.
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string device;
      words >> device;
      auto colon = device.find(':');
      if (colon == std::string::npos) continue;
      const uint64_t major = parse_cgroup_uint(device.substr(0, colon), files.path("io.stat"));
      const uint64_t minor = parse_cgroup_uint(device.substr(colon + 1), files.path("io.stat"));
      for (std::string item; words >> item;) {
        auto eq = item.find('=');
        if (eq == std::string::npos) continue;
        auto key = item.substr(0, eq);
        std::vector<BlkioEntry>* table = key == "rbytes" || key == "wbytes" ? &b.service_bytes
                                         : key == "rios" || key == "wios"   ? &b.serviced
                                                                            : nullptr;
        if (!table) continue;  // no v1 equivalent
        table->push_back({.major = major,
                          .minor = minor,
                          .op = key[0] == 'r' ? "Read" : "Write",
                          .value = parse_cgroup_uint(item.substr(eq + 1), files.path("io.stat"))});
      }
    }
  }
  b.psi = read_psi(files, "io.pressure");
}

void read_hugetlb_v2(const ControllerFiles& files, CgroupStats& stats) {
  for (const auto& size : hugepage_sizes()) {
    const auto prefix = "hugetlb." + size;
    auto current = read_optional(files, prefix + ".current");
    if (!current) continue;  // controller not enabled here
    stats.hugetlb[size] = {.usage = parse_cgroup_uint(*current, files.path(prefix + ".current")),
                           .failcnt = files.read_key(prefix + ".events", "max").value_or(0)};
  }
}

}  // namespace deltabox::cgroups
