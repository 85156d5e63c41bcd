#pragma once
// Container statistics for `events` / `events --stats`: read from each controller where it lives
// (v1 hierarchy or cgroup2, see controllers.hpp) into libcontainer's cgroups.Stats shape, then
// encoded as runc 1.2's types.Stats JSON (types/events.go), field order and omitempty included.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cgroups/controller_files.hpp"

namespace deltabox::cgroups {

class ControllerMap;

struct PsiData {
  double avg10 = 0, avg60 = 0, avg300 = 0;
  uint64_t total = 0;
};
struct Psi {
  PsiData some, full;
};

struct MemoryData {
  uint64_t usage = 0, max_usage = 0, failcnt = 0, limit = 0;
};

struct BlkioEntry {
  uint64_t major = 0, minor = 0;
  std::string op;
  uint64_t value = 0;
};

struct CgroupStats {
  struct Cpu {
    uint64_t total = 0, kernel = 0, user = 0;  // nanoseconds
    std::vector<uint64_t> percpu, percpu_kernel, percpu_user;
    uint64_t periods = 0, throttled_periods = 0, throttled_time = 0;
    std::optional<Psi> psi;
  } cpu;
  struct Cpuset {
    std::vector<uint16_t> cpus, mems;
    uint64_t cpu_exclusive = 0, mem_hardwall = 0, mem_exclusive = 0, memory_migrate = 0, memory_spread_page = 0,
             memory_spread_slab = 0, memory_pressure = 0, sched_load_balance = 0;
    int64_t sched_relax_domain_level = 0;
  } cpuset;
  struct Memory {
    uint64_t cache = 0;
    MemoryData usage, swap, kernel, kernel_tcp;
    std::map<std::string, uint64_t> raw;  // memory.stat
    std::optional<Psi> psi;
  } memory;
  struct Pids {
    uint64_t current = 0, limit = 0;  // limit 0: none
  } pids;
  struct Blkio {
    std::vector<BlkioEntry> service_bytes, serviced, queued, service_time, wait_time, merged, time, sectors;
    std::optional<Psi> psi;
  } blkio;
  struct Hugetlb {
    uint64_t usage = 0, max_usage = 0, failcnt = 0;
  };
  std::map<std::string, Hugetlb> hugetlb;  // by page size: "2MB", "1GB"
};

CgroupStats read_stats(const ControllerMap& controllers);
// {"cpu":..,"cpuset":..,"memory":..,"pids":..,"blkio":..,"hugetlb":..,"intel_rdt":{},
//  "network_interfaces":null}
nlohmann::ordered_json stats_to_json(const CgroupStats& stats);

// Huge page sizes the kernel supports, named as hugetlb files name them ("2MB", "1GB").
std::vector<std::string> hugepage_sizes();
// "0-2,4" → {0, 1, 2, 4} (cpuset lists).
std::vector<uint16_t> parse_cpu_list(std::string_view text);
// A PSI file: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull ...".
Psi parse_psi(std::string_view text);

// Per-version readers (stats_v1.cpp, stats_v2.cpp), each filling its controller's part.
using StatsReader = void (*)(const ControllerFiles&, CgroupStats&);
void read_cpuset_v1(const ControllerFiles& files, CgroupStats& stats);
void read_memory_v1(const ControllerFiles& files, CgroupStats& stats);
void read_cpu_v1(const ControllerFiles& files, CgroupStats& stats);
void read_cpuacct_v1(const ControllerFiles& files, CgroupStats& stats);
void read_pids_v1(const ControllerFiles& files, CgroupStats& stats);
void read_blkio_v1(const ControllerFiles& files, CgroupStats& stats);
void read_hugetlb_v1(const ControllerFiles& files, CgroupStats& stats);
void read_memory_v2(const ControllerFiles& files, CgroupStats& stats);
void read_cpu_v2(const ControllerFiles& files, CgroupStats& stats);
void read_pids_v2(const ControllerFiles& files, CgroupStats& stats);
void read_io_v2(const ControllerFiles& files, CgroupStats& stats);
void read_hugetlb_v2(const ControllerFiles& files, CgroupStats& stats);

// "key value" lines (memory.stat, cpu.stat) in file order; `where` names the file in errors.
std::vector<std::pair<std::string, uint64_t>> parse_key_values(std::string_view text, const std::string& where);
// The file's content, or nullopt when it does not exist (optional knobs, older kernels).
std::optional<std::string> read_optional(const ControllerFiles& files, std::string_view file);

}  // namespace deltabox::cgroups
