#include "cgroups/stats.hpp"

#include <dirent.h>

#include <charconv>
#include <cmath>
#include <memory>
#include <sstream>

#include "cgroups/controllers.hpp"
#include "cgroups/manager.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

using json = nlohmann::ordered_json;

struct StatsGroup {
  std::string_view v1_name;
  std::string_view v2_name;  // "" when cgroup2 has nothing to read
  StatsReader v1;
  StatsReader v2;
};

// libcontainer's fs subsystem order (cpu before cpuacct: both fill cpu stats).
constexpr StatsGroup kGroups[] = {
    {"cpuset", "", read_cpuset_v1, nullptr},
    {"memory", "memory", read_memory_v1, read_memory_v2},
    {"cpu", "cpu", read_cpu_v1, read_cpu_v2},
    {"cpuacct", "", read_cpuacct_v1, nullptr},
    {"pids", "pids", read_pids_v1, read_pids_v2},
    {"blkio", "io", read_blkio_v1, read_io_v2},
    {"hugetlb", "hugetlb", read_hugetlb_v1, read_hugetlb_v2},
};

// Go's encoding/json writes 0.0 as 0; keep integral averages integers so the JSON matches.
json number(double value) {
  if (value == std::floor(value) && std::fabs(value) < 1e15) return static_cast<int64_t>(value);
  return value;
}

// omitempty: zero numbers, empty strings and empty lists are left out.
void put(json& j, const char* key, uint64_t value) {
  if (value) j[key] = value;
}
template <typename T>
void put(json& j, const char* key, const std::vector<T>& values) {
  if (!values.empty()) j[key] = values;
}

json psi_json(const Psi& psi) {
  auto data = [](const PsiData& d) {
    return json{
        {"avg10", number(d.avg10)}, {"avg60", number(d.avg60)}, {"avg300", number(d.avg300)}, {"total", d.total}};
  };
  return {{"some", data(psi.some)}, {"full", data(psi.full)}};
}

void put(json& j, const char* key, const std::optional<Psi>& psi) {
  if (psi) j[key] = psi_json(*psi);
}

json cpu_json(const CgroupStats::Cpu& c) {
  json usage = json::object();
  put(usage, "total", c.total);
  put(usage, "percpu", c.percpu);
  put(usage, "percpu_kernel", c.percpu_kernel);
  put(usage, "percpu_user", c.percpu_user);
  usage["kernel"] = c.kernel;
  usage["user"] = c.user;
  json throttling = json::object();
  put(throttling, "periods", c.periods);
  put(throttling, "throttledPeriods", c.throttled_periods);
  put(throttling, "throttledTime", c.throttled_time);
  json out{{"usage", usage}, {"throttling", throttling}};
  put(out, "psi", c.psi);
  return out;
}

json cpuset_json(const CgroupStats::Cpuset& c) {
  json out = json::object();
  put(out, "cpus", c.cpus);
  out["cpu_exclusive"] = c.cpu_exclusive;
  put(out, "mems", c.mems);
  out["mem_hardwall"] = c.mem_hardwall;
  out["mem_exclusive"] = c.mem_exclusive;
  out["memory_migrate"] = c.memory_migrate;
  out["memory_spread_page"] = c.memory_spread_page;
  out["memory_spread_slab"] = c.memory_spread_slab;
  out["memory_pressure"] = c.memory_pressure;
  out["sched_load_balance"] = c.sched_load_balance;
  out["sched_relax_domain_level"] = c.sched_relax_domain_level;
  return out;
}

json memory_entry_json(const MemoryData& m) {
  json out{{"limit", m.limit}};
  put(out, "usage", m.usage);
  put(out, "max", m.max_usage);
  out["failcnt"] = m.failcnt;
  return out;
}

json memory_json(const CgroupStats::Memory& m) {
  json out = json::object();
  put(out, "cache", m.cache);
  out["usage"] = memory_entry_json(m.usage);
  out["swap"] = memory_entry_json(m.swap);
  out["kernel"] = memory_entry_json(m.kernel);
  out["kernelTCP"] = memory_entry_json(m.kernel_tcp);
  if (!m.raw.empty()) {
    json raw = json::object();
    for (const auto& [k, v] : m.raw) raw[k] = v;  // std::map: sorted, as Go encodes maps
    out["raw"] = raw;
  }
  put(out, "psi", m.psi);
  return out;
}

json blkio_entries(const std::vector<BlkioEntry>& entries) {
  json out = json::array();
  for (const auto& e : entries) {
    json j = json::object();
    put(j, "major", e.major);
    put(j, "minor", e.minor);
    if (!e.op.empty()) j["op"] = e.op;
    put(j, "value", e.value);
    out.push_back(j);
  }
  return out;
}

json blkio_json(const CgroupStats::Blkio& b) {
  json out = json::object();
  const std::pair<const char*, const std::vector<BlkioEntry>*> lists[] = {{"ioServiceBytesRecursive", &b.service_bytes},
                                                                          {"ioServicedRecursive", &b.serviced},
                                                                          {"ioQueueRecursive", &b.queued},
                                                                          {"ioServiceTimeRecursive", &b.service_time},
                                                                          {"ioWaitTimeRecursive", &b.wait_time},
                                                                          {"ioMergedRecursive", &b.merged},
                                                                          {"ioTimeRecursive", &b.time},
                                                                          {"sectorsRecursive", &b.sectors}};
  for (const auto& [key, list] : lists)
    if (!list->empty()) out[key] = blkio_entries(*list);
  put(out, "psi", b.psi);
  return out;
}

json hugetlb_json(const std::map<std::string, CgroupStats::Hugetlb>& hugetlb) {
  json out = json::object();
  for (const auto& [size, h] : hugetlb) {
    json j = json::object();
    put(j, "usage", h.usage);
    put(j, "max", h.max_usage);
    j["failcnt"] = h.failcnt;
    out[size] = j;
  }
  return out;
}

uint64_t parse_u64(std::string_view text, std::string_view what) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) fail("invalid {} {:?}", what, std::string(text));
  return value;
}

}  // namespace

CgroupStats read_stats(const ControllerMap& controllers) {
  CgroupStats stats;
  for (const auto& g : kGroups) {
    auto files = controllers.for_reading(g.v1_name, g.v2_name);
    if (!files.present()) continue;
    (files.unified() ? g.v2 : g.v1)(files, stats);
  }
  return stats;
}

json stats_to_json(const CgroupStats& s) {
  json pids = json::object();
  put(pids, "current", s.pids.current);
  put(pids, "limit", s.pids.limit);
  return {{"cpu", cpu_json(s.cpu)},          {"cpuset", cpuset_json(s.cpuset)},
          {"memory", memory_json(s.memory)}, {"pids", pids},
          {"blkio", blkio_json(s.blkio)},    {"hugetlb", hugetlb_json(s.hugetlb)},
          {"intel_rdt", json::object()},     {"network_interfaces", nullptr}};
}

std::vector<std::string> hugepage_sizes() {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/sys/kernel/mm/hugepages"), ::closedir);
  if (!dir) return out;
  while (auto* e = ::readdir(dir.get())) {
    std::string_view name = e->d_name;
    if (!name.starts_with("hugepages-") || !name.ends_with("kB")) continue;
    name.remove_prefix(10);
    name.remove_suffix(2);
    uint64_t kb = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), kb);
    if (ec != std::errc() || end != name.data() + name.size()) continue;
    // The kernel's own naming (mm/hugetlb_cgroup.c): the largest whole unit.
    if (kb >= (1u << 20))
      out.push_back(fmt::format("{}GB", kb >> 20));
    else if (kb >= (1u << 10))
      out.push_back(fmt::format("{}MB", kb >> 10));
    else
      out.push_back(fmt::format("{}KB", kb));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint16_t> parse_cpu_list(std::string_view text) {
  std::vector<uint16_t> out;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.find(',', pos), text.size());
    auto range = text.substr(pos, end - pos);
    pos = end + 1;
    if (range.empty()) continue;
    size_t dash = range.find('-');
    uint64_t first = parse_u64(range.substr(0, dash), "cpuset range");
    uint64_t last = dash == std::string_view::npos ? first : parse_u64(range.substr(dash + 1), "cpuset range");
    if (last < first || last > 0xffff) fail("invalid cpuset range {:?}", std::string(range));
    for (uint64_t i = first; i <= last; ++i) out.push_back(static_cast<uint16_t>(i));
  }
  return out;
}

Psi parse_psi(std::string_view text) {
  Psi psi;
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string kind;
    words >> kind;
    PsiData* data = kind == "some" ? &psi.some : kind == "full" ? &psi.full : nullptr;
    if (!data) continue;
    for (std::string field; words >> field;) {
      auto eq = field.find('=');
      if (eq == std::string::npos) fail("invalid PSI field {:?}", field);
      auto key = field.substr(0, eq), value = field.substr(eq + 1);
      if (key == "total")
        data->total = parse_u64(value, "PSI total");
      else if (key == "avg10" || key == "avg60" || key == "avg300")
        (key == "avg10" ? data->avg10 : key == "avg60" ? data->avg60 : data->avg300) = std::stod(value);
    }
  }
  return psi;
}

std::vector<std::pair<std::string, uint64_t>> parse_key_values(std::string_view text, const std::string& where) {
  std::vector<std::pair<std::string, uint64_t>> out;
  std::istringstream lines{std::string(text)};
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto space = line.find(' ');
    if (space == std::string::npos) fail("failed to parse {} ({:?})", where, line);
    out.emplace_back(line.substr(0, space), parse_cgroup_uint(line.substr(space + 1), where));
  }
  return out;
}

std::optional<std::string> read_optional(const ControllerFiles& files, std::string_view file) {
  try {
    return files.read(file);
  } catch (const Error& e) {
    if (e.code() == ENOENT) return std::nullopt;
    throw;
  }
}

nlohmann::ordered_json Manager::stats_json() const {
  const ControllerMap controllers(placements());
  return stats_to_json(read_stats(controllers));
}

}  // namespace deltabox::cgroups
