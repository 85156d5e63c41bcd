// linux.resources on cgroups: pure conversions, merge, device rules and the eBPF filter; writers
// against fake cgroupfs trees (the only way pure v2 can be checked on this hybrid machine); and
// live checks under this process's own cgroups (see cgroup_test_util.hpp for the safety rules).
#include <doctest.h>
#include <poll.h>
#include <sys/stat.h>

#include <cstring>
#include <mutex>
#include <thread>

#include <oci/config.hpp>

#include "cgroup_test_util.hpp"
#include "cgroups/controllers.hpp"
#include "cgroups/convert.hpp"
#include "cgroups/devices.hpp"
#include "cgroups/devices_ebpf.hpp"
#include "cgroups/oom.hpp"
#include "cgroups/resources.hpp"
#include "cgroups/stats.hpp"
#include "cgroups/wait.hpp"
#include "cgroups/writers.hpp"

using namespace cgroup_test;
using namespace std::chrono_literals;

namespace {

oci::Resources resources(const char* json_text) { return oci::parse_resources(nlohmann::json::parse(json_text)); }

// Every linux.resources field, with values whose v1 and v2 renderings differ where they can.
const char* kAllFields = R"({
  "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10,
             "disableOOMKiller": true, "useHierarchy": true, "checkBeforeUpdate": true},
  "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000,
          "realtimeRuntime": 950000, "realtimePeriod": 1000000, "cpus": "0-1", "mems": "0", "idle": 1},
  "pids": {"limit": -1},
  "blockIO": {"weight": 500, "leafWeight": 300,
              "weightDevice": [{"major": 8, "minor": 0, "weight": 200, "leafWeight": 100}],
              "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
              "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
              "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
              "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]}
})";

// Records what the code under test writes to fake cgroup files written more than once (io.max):
// each is a FIFO drained by a thread. Consecutive writes can merge in the FIFO when a writer
// reopens before the reader saw EOF, so only the concatenated byte stream is reliable.
class WriteLog {
 public:
  ~WriteLog() { stop(); }
  void watch(const std::string& path) {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    paths_.push_back(path);
    threads_.emplace_back([this, path] {
      for (;;) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        std::string data;
        char buf[512];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) data.append(buf, static_cast<size_t>(n));
        ::close(fd);
        const bool last = data.size() >= std::strlen(kStop) &&
                          data.compare(data.size() - std::strlen(kStop), std::string::npos, kStop) == 0;
        if (last) data.resize(data.size() - std::strlen(kStop));
        std::lock_guard lock(mutex_);
        writes_[path] += data;
        if (last) return;
      }
    });
  }
  std::string writes(const std::string& path) {
    stop();
    return writes_[path];
  }
  void stop() {
    for (const auto& path : paths_) {
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        (void)!::write(fd, kStop, std::strlen(kStop));
        ::close(fd);
      }
    }
    paths_.clear();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  static constexpr const char* kStop = "\x04stop";
  std::vector<std::string> paths_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::map<std::string, std::string> writes_;
};

// Empty stand-ins for the cgroup files a test expects to be written.
void touch_all(const std::string& dir, std::initializer_list<const char*> names) {
  for (const char* name : names) put(dir + "/" + name, "");
}

std::string devices_listing(const std::vector<DeviceRule>& rules) {
  std::string out;
  for (const auto& r : DeviceEmulator::from_rules(rules).rules())
    if (r.type != 'a') out += cgroup_string(r) + "\n";
  return out;
}

std::vector<std::string> rule_strings(const std::vector<DeviceRule>& rules) {
  std::vector<std::string> out;
  for (const auto& r : rules) out.push_back(std::string(r.allow ? "allow " : "deny ") + cgroup_string(r));
  return out;
}

std::vector<std::string> disassemble(const BpfProgram& program) {
  std::vector<std::string> out;
  for (size_t i = 0; i < program.size(); ++i) {
    const auto& in = program[i];
    const int dst = in.dst_reg, src = in.src_reg;
    const auto target = static_cast<long>(i) + 1 + in.off;
    std::string text;
    switch (in.code) {
      case BPF_LDX | BPF_MEM | BPF_W:
        text = fmt::format("ldxw r{}, [r{}+{}]", dst, src, in.off);
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        text = fmt::format("and32 r{}, {}", dst, in.imm);
        break;
      case BPF_ALU | BPF_RSH | BPF_K:
        text = fmt::format("rsh32 r{}, {}", dst, in.imm);
        break;
      case BPF_ALU | BPF_MOV | BPF_K:
        text = fmt::format("mov32 r{}, {}", dst, in.imm);
        break;
      case BPF_ALU | BPF_MOV | BPF_X:
        text = fmt::format("mov32 r{}, r{}", dst, src);
        break;
      case BPF_JMP | BPF_JNE | BPF_K:
        text = fmt::format("jne r{}, {}, ->{}", dst, in.imm, target);
        break;
      case BPF_JMP | BPF_JNE | BPF_X:
        text = fmt::format("jne r{}, r{}, ->{}", dst, src, target);
        break;
      case BPF_JMP | BPF_EXIT:
        text = "exit";
        break;
      default:
        text = fmt::format("? code {:#x}", in.code);
    }
    out.push_back(fmt::format("{}: {}", i, text));
  }
  return out;
}

const std::vector<std::string> kLoadContext = {"0: ldxw r2, [r1+0]", "1: and32 r2, 65535", "2: ldxw r3, [r1+0]",
                                               "3: rsh32 r3, 16",    "4: ldxw r4, [r1+4]", "5: ldxw r5, [r1+8]"};

std::vector<std::string> with_context(std::vector<std::string> body) {
  auto out = kLoadContext;
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pure

TEST_CASE("cgroup resources: unit conversions follow runc's") {
  CHECK(cpu_shares_to_weight(0) == 0);
  CHECK(cpu_shares_to_weight(2) == 1);
  CHECK(cpu_shares_to_weight(1024) == 39);
  CHECK(cpu_shares_to_weight(262144) == 10000);
  CHECK(cpu_shares_to_weight(1) == 1);  // clamped rather than wrapping
  CHECK(cpu_shares_to_weight(1 << 30) == 10000);

  CHECK(memory_swap_to_v2(0, 0) == 0);
  CHECK(memory_swap_to_v2(0, -1) == -1);  // unlimited memory, swap unset: both unlimited
  CHECK(memory_swap_to_v2(-1, 1000) == -1);
  CHECK(memory_swap_to_v2(3000, -1) == 3000);
  CHECK(memory_swap_to_v2(3000, 1000) == 2000);
  CHECK(memory_swap_to_v2(1000, 1000) == 0);
  CHECK(error_of([] { memory_swap_to_v2(1000, 0); }) == "unable to set swap limit without memory limit");
  CHECK(error_of([] { memory_swap_to_v2(1000, -5); }) == "invalid memory value: -5");
  CHECK(error_of([] { memory_swap_to_v2(500, 1000); }) == "memory+swap limit should be >= memory limit");

  CHECK(blkio_weight_to_io_weight(0) == 0);
  CHECK(blkio_weight_to_io_weight(10) == 1);
  CHECK(blkio_weight_to_io_weight(500) == 4950);
  CHECK(blkio_weight_to_io_weight(1000) == 10000);

  CHECK(v2_limit(0) == "");
  CHECK(v2_limit(-1) == "max");
  CHECK(v2_limit(4096) == "4096");
  CHECK(pids_max(-1) == "max");
  CHECK(pids_max(0) == "max");
  CHECK(pids_max(100) == "100");
  CHECK(cpu_max(50000, 0) == "50000 100000");
  CHECK(cpu_max(-1, 20000) == "max 20000");
  CHECK(cpu_max(0, 20000) == "max 20000");

  CHECK(device_value(8, 0, 1048576) == "8:0 1048576");
  CHECK(io_max_line({.major = 8, .minor = 16, .rate = 100}, "riops") == "8:16 riops=100");
  CHECK(rdma_max_line("mlx5_1", {.hca_handles = 3, .hca_objects = 10000}) == "mlx5_1 hca_handle=3 hca_object=10000");
  CHECK(rdma_max_line("mlx5_1", {.hca_objects = 7}) == "mlx5_1 hca_object=7");
}

TEST_CASE("cgroup resources: merge_resources changes what the update sets and keeps the rest") {
  auto current = resources(R"({
    "devices": [{"allow": false, "access": "rwm"}],
    "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
    "cpu": {"shares": 512, "quota": 50000, "cpus": "0"},
    "pids": {"limit": 100},
    "blockIO": {"weight": 300, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 1048576}],
    "unified": {"memory.high": "1G"}
  })");
  auto merged = merge_resources(current, resources(R"({
    "devices": [{"allow": true, "access": "rwm"}],
    "memory": {"limit": -1},
    "cpu": {"quota": 20000},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}, {"pageSize": "1GB", "limit": 0}],
    "unified": {"pids.max": "10"}
  })"));
  CHECK(merged.devices == current.devices);  // runc's update cannot change devices
  CHECK(merged.memory->limit == -1);
  CHECK(merged.memory->swap == -1);  // unlimited memory without a swap value: unlimited swap
  CHECK(merged.memory->reservation == 33554432);
  CHECK(merged.cpu->shares == 512u);
  CHECK(merged.cpu->quota == 20000);
  CHECK(merged.cpu->cpus == "0");
  CHECK(merged.pids->limit == 100);
  CHECK(merged.block_io == current.block_io);
  REQUIRE(merged.hugepage_limits.size() == 2);
  CHECK(merged.hugepage_limits[0].limit == 2097152);
  CHECK(merged.hugepage_limits[1].page_size == "1GB");
  CHECK(merged.unified == std::map<std::string, std::string>{{"memory.high", "1G"}, {"pids.max", "10"}});

  auto raised = merge_resources(current, resources(R"({"memory": {"limit": 268435456}, "pids": {"limit": 5}})"));
  CHECK(raised.memory->swap == 134217728);  // an explicit limit keeps the current swap
  CHECK(raised.pids->limit == 5);
  CHECK(merge_resources(current, {}) == current);
  auto from_nothing = merge_resources({}, resources(R"({"cpu": {"shares": 2}})"));
  CHECK(from_nothing.cpu->shares == 2u);
  CHECK_FALSE(from_nothing.memory);
}

TEST_CASE("cgroup resources: device rules, runc's default allow-list and v1 strings") {
  CHECK(cgroup_string({.type = 'a'}) == "a *:* rwm");
  CHECK(cgroup_string({.type = 'c', .major = 136, .access = kDeviceRead | kDeviceWrite}) == "c 136:* rw");
  CHECK(cgroup_string({.type = 'b', .major = 8, .minor = 0, .access = kDeviceMknod}) == "b 8:0 m");
  CHECK(device_access_string(parse_device_access("mwr")) == "rwm");

  auto rules = device_rules(resources(R"({"devices": [{"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]})"));
  REQUIRE(rules.size() == 2 + default_device_rules().size());
  CHECK(rules[0] == DeviceRule{.type = 'a', .allow = false});
  CHECK(rules[1] ==
        DeviceRule{.type = 'c', .major = 10, .minor = 229, .access = kDeviceRead | kDeviceWrite, .allow = true});
  // The defaults follow the config's rules, so a config cannot deny them away (runc's behaviour).
  CHECK(rule_strings({rules.begin() + 2, rules.end()}) ==
        std::vector<std::string>{"allow c *:* m", "allow b *:* m", "allow c 1:3 rwm", "allow c 1:8 rwm",
                                 "allow c 1:7 rwm", "allow c 5:0 rwm", "allow c 1:5 rwm", "allow c 1:9 rwm",
                                 "allow c 136:* rwm", "allow c 5:2 rwm", "allow c 10:200 rwm"});

  oci::Resources bad;
  bad.devices.push_back({.allow = true, .type = "x", .access = "r"});
  CHECK(error_of([&] { device_rules(bad); }) == "invalid cgroup device type \"x\"");
  bad.devices = {{.allow = true, .access = "rwm"}, {.allow = false}};
  CHECK(error_of([&] { device_rules(bad); }) == "device access at 1 field cannot be empty");
}

TEST_CASE("cgroup resources: the devices emulator writes minimal v1 transitions") {
  const auto target =
      DeviceEmulator::from_rules(device_rules(resources(R"({"devices": [{"allow": false, "access": "rwm"}]})")));
  CHECK_FALSE(target.deny_list());

  // A new v1 cgroup is allow-all: deny everything, then allow the list, sorted by major:minor.
  auto fresh = DeviceEmulator::from_list("a *:* rwm\n");
  CHECK(fresh.deny_list());
  CHECK(rule_strings(fresh.transition(target)) ==
        std::vector<std::string>{"deny a *:* rwm", "allow b *:* m", "allow c *:* m", "allow c 1:3 rwm",
                                 "allow c 1:5 rwm", "allow c 1:7 rwm", "allow c 1:8 rwm", "allow c 1:9 rwm",
                                 "allow c 5:0 rwm", "allow c 5:2 rwm", "allow c 10:200 rwm", "allow c 136:* rwm"});

  // Already there (an update re-applying the same rules): nothing to write at all.
  const auto listing = devices_listing(device_rules(resources(R"({"devices": [{"allow": false, "access": "rwm"}]})")));
  CHECK(DeviceEmulator::from_list(listing) == target);
  CHECK(DeviceEmulator::from_list(listing).transition(target).empty());

  // Partial changes: only the dropped and gained permissions, no disruptive "a" rule.
  auto before = DeviceEmulator::from_list("c 1:3 rwm\nc 1:5 rw\nb 8:0 r\n");
  auto after = DeviceEmulator::from_rules({{.type = 'a'},
                                           {.type = 'c', .major = 1, .minor = 3, .access = kDeviceRead, .allow = true},
                                           {.type = 'c', .major = 1, .minor = 5, .allow = true}});
  CHECK(rule_strings(before.transition(after)) ==
        std::vector<std::string>{"deny c 1:3 wm", "deny b 8:0 r", "allow c 1:5 m"});
  // Back to allow-all (a privileged container).
  CHECK(rule_strings(before.transition(DeviceEmulator::from_rules({{.type = 'a', .allow = true}}))) ==
        std::vector<std::string>{"allow a *:* rwm"});

  CHECK(error_of([] {
          DeviceEmulator::from_rules({{.type = 'a', .allow = true},
                                      {.type = 'c', .major = 1, .access = kDeviceAllAccess, .allow = false},
                                      {.type = 'c', .major = 1, .minor = 3, .access = kDeviceRead, .allow = true}});
        }) ==
        "unable to remove 'deny' exception: requested rule [{99 1 3} r] not supported by devices cgroupv1 "
        "(cannot punch hole in existing wildcard rule [{99 1 -1} rwm])");
  CHECK(contains(error_of([] { DeviceEmulator::from_list("c 1:3 rwx\n"); }), "error parsing line \"c 1:3 rwx\""));
  CHECK(contains(error_of([] { DeviceEmulator::from_list("c 1:3\n"); }), "malformed devices.list rule"));
}

TEST_CASE("cgroup resources: eBPF device filter for runc's built-in allow-list") {
  // The program runc's devicefilter builds for specconv.AllowedDevices, block by block.
  CHECK(disassemble(device_filter_program(default_device_rules())) ==
        with_context({
            // b *:* m
            "6: jne r2, 1, ->12",
            "7: mov32 r1, r3",
            "8: and32 r1, 1",
            "9: jne r1, r3, ->12",
            "10: mov32 r0, 1",
            "11: exit",
            // c *:* m
            "12: jne r2, 2, ->18",
            "13: mov32 r1, r3",
            "14: and32 r1, 1",
            "15: jne r1, r3, ->18",
            "16: mov32 r0, 1",
            "17: exit",
            // c 1:3, 1:5, 1:7, 1:8, 1:9, 5:0, 5:2, 10:200 rwm
            "18: jne r2, 2, ->23",
            "19: jne r4, 1, ->23",
            "20: jne r5, 3, ->23",
            "21: mov32 r0, 1",
            "22: exit",
            "23: jne r2, 2, ->28",
            "24: jne r4, 1, ->28",
            "25: jne r5, 5, ->28",
            "26: mov32 r0, 1",
            "27: exit",
            "28: jne r2, 2, ->33",
            "29: jne r4, 1, ->33",
            "30: jne r5, 7, ->33",
            "31: mov32 r0, 1",
            "32: exit",
            "33: jne r2, 2, ->38",
            "34: jne r4, 1, ->38",
            "35: jne r5, 8, ->38",
            "36: mov32 r0, 1",
            "37: exit",
            "38: jne r2, 2, ->43",
            "39: jne r4, 1, ->43",
            "40: jne r5, 9, ->43",
            "41: mov32 r0, 1",
            "42: exit",
            "43: jne r2, 2, ->48",
            "44: jne r4, 5, ->48",
            "45: jne r5, 0, ->48",
            "46: mov32 r0, 1",
            "47: exit",
            "48: jne r2, 2, ->53",
            "49: jne r4, 5, ->53",
            "50: jne r5, 2, ->53",
            "51: mov32 r0, 1",
            "52: exit",
            "53: jne r2, 2, ->58",
            "54: jne r4, 10, ->58",
            "55: jne r5, 200, ->58",
            "56: mov32 r0, 1",
            "57: exit",
            // c 136:* rwm
            "58: jne r2, 2, ->62",
            "59: jne r4, 136, ->62",
            "60: mov32 r0, 1",
            "61: exit",
            // default: deny
            "62: mov32 r0, 0",
            "63: exit",
        }));
}

TEST_CASE("cgroup resources: eBPF device filter for deny-lists, allow-all and nothing") {
  CHECK(disassemble(device_filter_program({})) == with_context({"6: mov32 r0, 0", "7: exit"}));
  CHECK(disassemble(device_filter_program({{.type = 'a', .allow = true}})) ==
        with_context({"6: mov32 r0, 1", "7: exit"}));
  // Privileged except one device, and the order-dependent case runc documents: 8:1 is allowed
  // again by the later "a" rule, 8:2 stays denied.
  const auto except_8_2 = with_context({"6: jne r2, 1, ->11", "7: jne r4, 8, ->11", "8: jne r5, 2, ->11",
                                        "9: mov32 r0, 0", "10: exit", "11: mov32 r0, 1", "12: exit"});
  CHECK(disassemble(device_filter_program({{.type = 'a', .allow = true}, {.type = 'b', .major = 8, .minor = 2}})) ==
        except_8_2);
  CHECK(disassemble(device_filter_program({{.type = 'b', .major = 8, .minor = 1},
                                           {.type = 'a', .allow = true},
                                           {.type = 'b', .major = 8, .minor = 2}})) == except_8_2);
  // Partial access on a single device: the access check block.
  CHECK(disassemble(device_filter_program(
            {{.type = 'c', .major = 4, .minor = 64, .access = kDeviceRead | kDeviceWrite, .allow = true}})) ==
        with_context({"6: jne r2, 2, ->14", "7: mov32 r1, r3", "8: and32 r1, 6", "9: jne r1, r3, ->14",
                      "10: jne r4, 4, ->14", "11: jne r5, 64, ->14", "12: mov32 r0, 1", "13: exit", "14: mov32 r0, 0",
                      "15: exit"}));
}

TEST_CASE("cgroup resources: unified keys are refused before anything is written") {
  CHECK(error_of([] {
          check_unified({{"memory.max", "1"}}, false);
        }) == "invalid configuration: cannot use unified on cgroup v1");
  CHECK(error_of([] {
          check_unified({{"../memory.max", "1"}}, true);
        }) == "unified resource \"../memory.max\" must be a file name (no slashes)");
  CHECK(error_of([] { check_unified({{"..", "1"}}, true); }) == "unified resource \"..\" must be a file name");
  CHECK(error_of([] { check_unified({{".", "1"}}, true); }) == "unified resource \".\" must be a file name");
  CHECK(error_of([] { check_unified({}, false); }).empty());
  CHECK(error_of([] { check_unified({{"memory.max", "max"}}, true); }).empty());
}

TEST_CASE("cgroup resources: stats JSON has runc's types.Stats shape") {
  CgroupStats s;
  s.cpu.total = 300;
  s.cpu.user = 200;
  s.cpu.percpu = {100, 200};
  s.cpu.throttled_periods = 2;
  s.cpuset.cpus = {0, 1};
  s.memory.usage = {.usage = 4096, .max_usage = 8192, .failcnt = 0, .limit = 65536};
  s.memory.raw = {{"rss", 4096}, {"cache", 0}};
  s.pids = {.current = 3, .limit = 0};
  s.blkio.service_bytes = {{.major = 8, .minor = 0, .op = "Read", .value = 512}};
  s.hugetlb["2MB"] = {.usage = 0, .max_usage = 0, .failcnt = 0};
  s.memory.psi = Psi{.some = {.avg10 = 1.5, .total = 7}};
  CHECK(
      stats_to_json(s).dump() ==
      R"({"cpu":{"usage":{"total":300,"percpu":[100,200],"kernel":0,"user":200},"throttling":{"throttledPeriods":2}},)"
      R"("cpuset":{"cpus":[0,1],"cpu_exclusive":0,"mem_hardwall":0,"mem_exclusive":0,"memory_migrate":0,)"
      R"("memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":0,)"
      R"("sched_relax_domain_level":0},)"
      R"("memory":{"usage":{"limit":65536,"usage":4096,"max":8192,"failcnt":0},"swap":{"limit":0,"failcnt":0},)"
      R"("kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0},"raw":{"cache":0,"rss":4096},)"
      R"("psi":{"some":{"avg10":1.5,"avg60":0,"avg300":0,"total":7},"full":{"avg10":0,"avg60":0,"avg300":0,"total":0}}},)"
      R"("pids":{"current":3},"blkio":{"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":512}]},)"
      R"("hugetlb":{"2MB":{"failcnt":0}},"intel_rdt":{},"network_interfaces":null})");

  CHECK(parse_cpu_list("0-2,4\n") == std::vector<uint16_t>{0, 1, 2, 4});
  CHECK(parse_cpu_list("\n").empty());
  auto psi =
      parse_psi("some avg10=0.25 avg60=1.00 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n");
  CHECK(psi.some.avg10 == doctest::Approx(0.25));
  CHECK(psi.some.total == 12);
  CHECK(psi.full.total == 3);
}

// ---------------------------------------------------------------------------------------------
// Fake cgroupfs

namespace {

// A pure cgroup v2 tree with the container at <root>/unified/ctr.
std::unique_ptr<Manager> fake_v2(const TempDir& root) {
  fs::create_directories(root.path + "/unified");
  auto m = Manager::for_hierarchies({{{{}, root.path + "/unified", "/"}, "/"}}, "", "ctr");
  REQUIRE(m->layout() == Layout::v2);
  m->create();
  return m;
}

}  // namespace

TEST_CASE("cgroup resources: fake v2 update writes every field in fs2's formats") {
  TempDir root;
  auto m = fake_v2(root);
  const auto dir = m->path("");
  put(dir + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  touch_all(dir, {"memory.max", "memory.low", "memory.swap.max", "cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle",
                  "pids.max", "io.weight", "cpuset.cpus", "cpuset.mems", "hugetlb.2MB.max", "hugetlb.2MB.rsvd.max",
                  "rdma.max", "cgroup.max.depth"});
  put(dir + "/memory.current", "1000\n");
  WriteLog log;
  log.watch(dir + "/io.max");

  auto r = resources(kAllFields);
  r.hugepage_limits = {{.page_size = "2MB", .limit = 4194304}};
  r.network =
      oci::NetworkResources{.class_id = 7, .priorities = {{.name = "eth0", .priority = 5}}};  // no v2 file: ignored
  r.rdma["mlx5_1"] = {.hca_handles = 3, .hca_objects = 10000};
  r.unified = {{"cgroup.max.depth", "3"}};
  // The update path: devices (an eBPF program, which a fake directory cannot take) stay alone.
  m->update({}, r);

  CHECK(slurp(dir + "/memory.swap.max") == "67108864");  // memory+swap 128M - memory 64M
  CHECK(slurp(dir + "/memory.max") == "67108864");
  CHECK(slurp(dir + "/memory.low") == "33554432");
  CHECK(slurp(dir + "/cpu.idle") == "1");
  CHECK(slurp(dir + "/cpu.weight") == "39");  // shares 1024
  CHECK(slurp(dir + "/cpu.max.burst") == "10000");
  CHECK(slurp(dir + "/cpu.max") == "50000 100000");
  CHECK(slurp(dir + "/pids.max") == "max");
  CHECK(slurp(dir + "/io.weight") == "4950");  // blkio weight 500, no BFQ
  CHECK(log.writes(dir + "/io.max") == "8:0 rbps=1048576" "8:0 wbps=2097152" "8:0 riops=100" "8:0 wiops=200");
  CHECK(slurp(dir + "/cpuset.cpus") == "0-1");
  CHECK(slurp(dir + "/cpuset.mems") == "0");
  CHECK(slurp(dir + "/hugetlb.2MB.max") == "4194304");
  CHECK(slurp(dir + "/hugetlb.2MB.rsvd.max") == "4194304");
  CHECK(slurp(dir + "/rdma.max") == "mlx5_1 hca_handle=3 hca_object=10000");
  CHECK(slurp(dir + "/cgroup.max.depth") == "3");
}

TEST_CASE("cgroup resources: fake v2 special cases (swap, BFQ, checkBeforeUpdate, missing files)") {
  TempDir root;
  auto m = fake_v2(root);
  const auto dir = m->path("");
  touch_all(dir, {"memory.max", "memory.swap.max", "io.bfq.weight", "hugetlb.1GB.max"});

  m->update({}, resources(R"({"memory": {"limit": 1000, "swap": 1000}, "blockIO": {"weight": 500}})"));
  CHECK(slurp(dir + "/memory.swap.max") == "0");  // memory+swap == memory: swap disabled
  CHECK(slurp(dir + "/io.bfq.weight") == "500");  // BFQ takes the v1 range as is
  m->update({}, resources(R"({"memory": {"limit": -1}})"));
  CHECK(slurp(dir + "/memory.swap.max") == "max");
  CHECK(slurp(dir + "/memory.max") == "max");

  // No swap accounting: "max" and "0" are nothing to do, a real limit is an error.
  fs::remove(dir + "/memory.swap.max");
  m->update({}, resources(R"({"memory": {"limit": -1}})"));
  CHECK(error_of([&] { m->update({}, resources(R"({"memory": {"limit": 1000, "swap": 3000}})")); }) ==
        "open " + dir + "/memory.swap.max: no such file or directory");
  CHECK(error_of([&] { m->update({}, resources(R"({"memory": {"swap": 3000}})")); }) ==
        "unable to set swap limit without memory limit");

  put(dir + "/memory.current", "5000\n");
  CHECK(error_of([&] { m->update({}, resources(R"({"memory": {"limit": 4096, "checkBeforeUpdate": true}})")); }) ==
        "rejecting memory limit 4096 <= usage 5000");
  CHECK(slurp(dir + "/memory.max") == "max");

  // hugetlb without the .rsvd files (kernels before 5.7): only the limit.
  m->update({}, resources(R"({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]})"));
  CHECK(slurp(dir + "/hugetlb.1GB.max") == "0");
  CHECK(error_of([&] { m->update({}, resources(R"({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})")); }) ==
        "open " + dir + "/hugetlb.2MB.max: no such file or directory");
  CHECK(error_of([&] { m->update({}, resources(R"({"unified": {"memory.oom.group": "1"}})")); }) ==
        "unified resource \"memory.oom.group\" can't be set: controller \"memory\" not available");
  CHECK(error_of([&] { m->update({}, resources(R"({"unified": {"nodot": "1"}})")); }) ==
        "unified resource \"nodot\" must be in the form CONTROLLER.PARAMETER");
}

namespace {

// A fake v1 tree shaped like this machine's (cpu and cpuacct co-mounted here) without hugetlb,
// net_cls, net_prio or rdma hierarchies.
struct FakeV1 {
  TempDir root;
  std::unique_ptr<Manager> manager;
  explicit FakeV1(bool with_unified = false) {
    std::vector<OwnHierarchy> hs;
    for (const char* c : {"cpuset", "memory", "devices", "pids", "blkio", "freezer"})
      hs.push_back({{{c}, root.path + "/" + c, "/"}, "/"});
    hs.push_back({{{"cpu", "cpuacct"}, root.path + "/cpu,cpuacct", "/"}, "/"});
    if (with_unified) hs.push_back({{{}, root.path + "/unified", "/"}, "/"});
    for (const auto& h : hs) fs::create_directories(h.hierarchy.mount_point);
    manager = Manager::for_hierarchies(hs, "a/ctr", "ignored");
    manager->create();
    // devices.list already showing what runc's defaults make of a deny-all config.
    put(dir("devices") + "/devices.list",
        devices_listing(device_rules(resources(R"({"devices": [{"allow": false, "access": "rwm"}]})"))));
  }
  std::string dir(const char* controller) const { return manager->path(controller); }
};

}  // namespace

TEST_CASE("cgroup resources: fake v1 apply writes every field in fs's formats") {
  FakeV1 fake;
  const auto memory = fake.dir("memory"), cpu = fake.dir("cpu"), blkio = fake.dir("blkio");
  put(memory + "/memory.limit_in_bytes", "9223372036854771712\n");
  touch_all(memory, {"memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.oom_control",
                     "memory.use_hierarchy", "memory.swappiness"});
  touch_all(cpu, {"cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us", "cpu.idle",
                  "cpu.rt_period_us", "cpu.rt_runtime_us"});
  touch_all(fake.dir("cpuset"), {"cpuset.cpus", "cpuset.mems"});
  touch_all(fake.dir("pids"), {"pids.max"});
  touch_all(blkio, {"blkio.weight", "blkio.leaf_weight", "blkio.weight_device", "blkio.leaf_weight_device",
                    "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
                    "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"});

  auto r = resources(kAllFields);
  r.devices = {{.allow = false, .access = "rwm"}};
  fake.manager->apply(r);

  CHECK(slurp(memory + "/memory.limit_in_bytes") == "67108864");
  CHECK(slurp(memory + "/memory.memsw.limit_in_bytes") == "134217728");  // v1 swap is memory+swap
  CHECK(slurp(memory + "/memory.soft_limit_in_bytes") == "33554432");
  CHECK(slurp(memory + "/memory.oom_control") == "1");
  CHECK(slurp(memory + "/memory.use_hierarchy") == "1");
  CHECK(slurp(memory + "/memory.swappiness") == "10");
  CHECK(slurp(cpu + "/cpu.shares") == "1024");
  CHECK(slurp(cpu + "/cpu.cfs_period_us") == "100000");
  CHECK(slurp(cpu + "/cpu.cfs_quota_us") == "50000");
  CHECK(slurp(cpu + "/cpu.cfs_burst_us") == "10000");
  CHECK(slurp(cpu + "/cpu.idle") == "1");
  CHECK(slurp(cpu + "/cpu.rt_period_us") == "1000000");
  CHECK(slurp(cpu + "/cpu.rt_runtime_us") == "950000");
  CHECK(slurp(fake.dir("cpuset") + "/cpuset.cpus") == "0-1");
  CHECK(slurp(fake.dir("cpuset") + "/cpuset.mems") == "0");
  CHECK(slurp(fake.dir("pids") + "/pids.max") == "max");
  CHECK(slurp(blkio + "/blkio.weight") == "500");
  CHECK(slurp(blkio + "/blkio.leaf_weight") == "300");
  CHECK(slurp(blkio + "/blkio.weight_device") == "8:0 200");
  CHECK(slurp(blkio + "/blkio.leaf_weight_device") == "8:0 100");
  CHECK(slurp(blkio + "/blkio.throttle.read_bps_device") == "8:0 1048576");
  CHECK(slurp(blkio + "/blkio.throttle.write_bps_device") == "8:0 2097152");
  CHECK(slurp(blkio + "/blkio.throttle.read_iops_device") == "8:0 100");
  CHECK(slurp(blkio + "/blkio.throttle.write_iops_device") == "8:0 200");

  // Without CFQ's blkio.weight, BFQ's file names (Linux 5.0+).
  fs::remove(blkio + "/blkio.weight");
  touch_all(blkio, {"blkio.bfq.weight"});
  fake.manager->apply(resources(R"({"blockIO": {"weight": 700}})"));
  CHECK(slurp(blkio + "/blkio.bfq.weight") == "700");
}

TEST_CASE("cgroup resources: missing files and controllers fail with runc's errors") {
  FakeV1 fake;
  const auto cpu = fake.dir("cpu");
  CHECK(error_of([&] { fake.manager->apply(resources(R"({"cpu": {"realtimeRuntime": 1000}})")); }) ==
        "open " + cpu + "/cpu.rt_runtime_us: no such file or directory");
  CHECK(error_of([&] { fake.manager->apply(resources(R"({"network": {"classID": 1048577}})")); }) ==
        "cannot set net_cls limit: container could not join or create cgroup");
  CHECK(error_of([&] {
          fake.manager->apply(resources(R"({"network": {"priorities": [{"name": "eth0", "priority": 1}]}})"));
        }) == "cannot set net_prio limit: container could not join or create cgroup");
  CHECK(error_of([&] { fake.manager->apply(resources(R"({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})")); }) ==
        "cannot set hugetlb limit: container could not join or create cgroup");
  CHECK(error_of([&] { fake.manager->apply(resources(R"({"rdma": {"mlx4_0": {"hcaHandles": 1}}})")); }) ==
        "cannot set rdma limit: container could not join or create cgroup");
  // Asking nothing of a missing controller is fine (an empty network object).
  CHECK(error_of([&] { fake.manager->apply(resources(R"({"network": {}})")); }).empty());

  // unified on v1 is refused before any other field is written.
  put(cpu + "/cpu.shares", "");
  CHECK(error_of([&] { fake.manager->apply(resources(R"({"cpu": {"shares": 2}, "unified": {"pids.max": "1"}})")); }) ==
        "invalid configuration: cannot use unified on cgroup v1");
  CHECK(slurp(cpu + "/cpu.shares").empty());

  // The kernel clamps shares; runc reports the clamped value read back.
  fs::remove(cpu + "/cpu.shares");
  fs::create_directory(cpu + "/cpu.shares");  // open(O_WRONLY) of a directory fails
  CHECK(error_of([&] { fake.manager->apply(resources(R"({"cpu": {"shares": 2}})")); }) ==
        "open " + cpu + "/cpu.shares: is a directory");
  CHECK(contains(error_of([&] { fake.manager->apply(resources(R"({"memory": {"swappiness": 101}})")); }),
                 "invalid value:101. valid memory swappiness range is 0-100"));
}

TEST_CASE(
    "cgroup resources: hybrid puts a controller missing from v1 on cgroup2, enabling it only in parents we made") {
  FakeV1 fake(true);
  const auto leaf = fake.dir("");
  const auto parent = fs::path(leaf).parent_path().string();  // "a": created by create()
  const auto root = fs::path(parent).parent_path().string();  // the hierarchy root: not ours
  put(root + "/cgroup.subtree_control", "");
  put(parent + "/cgroup.subtree_control", "");
  put(parent + "/cgroup.controllers", "hugetlb\n");  // the root passes hugetlb down to "a"
  put(leaf + "/cgroup.controllers", "");
  const auto hugetlb = resources(R"({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]})");

  // "+hugetlb" goes to "a" (ours) only; this fake kernel then still does not offer it to the leaf.
  CHECK(error_of([&] { fake.manager->apply(hugetlb); }) ==
        "cannot set hugetlb limit: container could not join or create cgroup");
  CHECK(slurp(parent + "/cgroup.subtree_control") == "+hugetlb");
  CHECK(slurp(root + "/cgroup.subtree_control").empty());

  put(leaf + "/cgroup.controllers", "hugetlb\n");
  touch_all(leaf, {"hugetlb.2MB.max", "hugetlb.2MB.rsvd.max"});
  fake.manager->apply(hugetlb);
  CHECK(slurp(leaf + "/hugetlb.2MB.max") == "4194304");

  // A root that does not pass it down: nothing is written anywhere.
  put(parent + "/cgroup.controllers", "");
  put(parent + "/cgroup.subtree_control", "");
  put(leaf + "/cgroup.controllers", "");
  CHECK(contains(error_of([&] { fake.manager->apply(hugetlb); }), "cannot set hugetlb limit"));
  CHECK(slurp(parent + "/cgroup.subtree_control").empty());

  // unified keys go to the cgroup2 side of a hybrid.
  put(leaf + "/cgroup.max.descendants", "");
  fake.manager->apply(resources(R"({"unified": {"cgroup.max.descendants": "5"}})"));
  CHECK(slurp(leaf + "/cgroup.max.descendants") == "5");
}

TEST_CASE("cgroup resources: fake v2 and v1 statistics") {
  TempDir root;
  auto m = fake_v2(root);
  const auto dir = m->path("");
  put(dir + "/cpu.stat",
      "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\n"
      "throttled_usec 20\n");
  put(dir + "/memory.stat", "anon 8192\nfile 4096\n");
  put(dir + "/memory.current", "12288\n");
  put(dir + "/memory.max", "max\n");
  put(dir + "/memory.peak", "20000\n");
  put(dir + "/memory.swap.current", "100\n");
  put(dir + "/memory.swap.max", "max\n");
  put(dir + "/pids.current", "2\n");
  put(dir + "/pids.max", "50\n");
  put(dir + "/io.stat", "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n");
  put(dir + "/cpu.pressure",
      "some avg10=0.00 avg60=0.00 avg300=0.00 total=9\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  for (const auto& size : hugepage_sizes()) {
    put(dir + "/hugetlb." + size + ".current", "0\n");
    put(dir + "/hugetlb." + size + ".events", "max 3\n");
  }
  auto j = m->stats_json();
  CHECK(j["cpu"]["usage"]["total"] == 1500000);
  CHECK(j["cpu"]["usage"]["user"] == 1000000);
  CHECK(j["cpu"]["usage"]["kernel"] == 500000);
  CHECK(j["cpu"]["throttling"]["throttledTime"] == 20000);
  CHECK(j["cpu"]["psi"]["some"]["total"] == 9);
  CHECK(j["memory"]["cache"] == 4096);
  CHECK(j["memory"]["usage"]["usage"] == 12288);
  CHECK(j["memory"]["usage"]["limit"] == UINT64_MAX);
  CHECK(j["memory"]["usage"]["max"] == 20000);
  CHECK(j["memory"]["swap"]["usage"] == 12388);  // v1 semantics: memory + swap
  CHECK(j["memory"]["raw"]["anon"] == 8192);
  CHECK(j["pids"] == nlohmann::ordered_json{{"current", 2}, {"limit", 50}});
  CHECK(j["blkio"]["ioServiceBytesRecursive"].dump() ==
        R"([{"major":8,"op":"Read","value":512},{"major":8,"op":"Write","value":1024}])");
  for (const auto& size : hugepage_sizes()) CHECK(j["hugetlb"][size]["failcnt"] == 3);

  FakeV1 v1;
  const auto memory = v1.dir("memory"), cpu = v1.dir("cpu");
  put(memory + "/memory.stat", "cache 100\nrss 200\n");
  for (const char* kind : {"", ".memsw"}) {
    put(memory + "/memory" + kind + ".usage_in_bytes", "300\n");
    put(memory + "/memory" + kind + ".max_usage_in_bytes", "400\n");
    put(memory + "/memory" + kind + ".failcnt", "1\n");
    put(memory + "/memory" + kind + ".limit_in_bytes", "9223372036854771712\n");
  }
  put(cpu + "/cpu.stat", "nr_periods 3\nnr_throttled 2\nthrottled_time 1000\n");
  put(cpu + "/cpuacct.stat", "user 10\nsystem 5\n");
  put(cpu + "/cpuacct.usage", "150000000\n");
  put(cpu + "/cpuacct.usage_percpu", "100000000 50000000 \n");
  put(cpu + "/cpuacct.usage_all", "cpu user system\n0 90000000 10000000\n1 40000000 10000000\n");
  put(v1.dir("pids") + "/pids.current", "1\n");
  put(v1.dir("pids") + "/pids.max", "max\n");
  put(v1.dir("cpuset") + "/cpuset.cpus", "0-1\n");
  put(v1.dir("blkio") + "/blkio.throttle.io_service_bytes_recursive", "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
  put(v1.dir("blkio") + "/blkio.throttle.io_serviced_recursive", "8:0 Read 1\nTotal 1\n");
  auto k = v1.manager->stats_json();
  const auto ticks = static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  CHECK(k["cpu"]["usage"]["user"] == 10 * 1000000000ull / ticks);
  CHECK(k["cpu"]["usage"]["total"] == 150000000);
  CHECK(k["cpu"]["usage"]["percpu"] == nlohmann::ordered_json{100000000, 50000000});
  CHECK(k["cpu"]["usage"]["percpu_kernel"] == nlohmann::ordered_json{10000000, 10000000});
  CHECK(k["cpu"]["throttling"].dump() == R"({"periods":3,"throttledPeriods":2,"throttledTime":1000})");
  CHECK(k["cpuset"]["cpus"] == nlohmann::ordered_json{0, 1});
  CHECK(k["memory"]["cache"] == 100);
  CHECK(k["memory"]["usage"].dump() == R"({"limit":9223372036854771712,"usage":300,"max":400,"failcnt":1})");
  CHECK(k["memory"]["kernel"].dump() == R"({"limit":0,"failcnt":0})");  // no kmem files
  CHECK(k["pids"].dump() == R"({"current":1})");
  CHECK(k["blkio"].dump() == R"({"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":4096},)"
                             R"({"major":8,"op":"Write"}],"ioServicedRecursive":[{"major":8,"op":"Read","value":1}]})");
  CHECK(k["hugetlb"].dump() == "{}");
}

// ---------------------------------------------------------------------------------------------
// Live, on this machine's hierarchies

namespace {

std::string trimmed(const std::string& path) {
  auto s = slurp(path);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// What open(2) of each device gives a process in the cgroup: "ok" or the errno text.
std::string try_open(const char* device) {
  int fd = ::open(device, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  return "ok";
}

std::array<char, 256> report(const std::string& text) {
  std::array<char, 256> out{};
  std::strncpy(out.data(), text.c_str(), out.size() - 1);
  return out;
}

// Forks a child into the cgroup that opens each device and reports "dev=result;...".
std::string open_devices_in(LiveCgroup& cg, std::initializer_list<const char*> devices) {
  Pipe results;
  pid_t child = cg.spawn([&] {
    std::string text;
    try {
      cg.manager->enter_self(false);
      for (const char* d : devices) text += fmt::format("{}={};", d, try_open(d));
    } catch (const std::exception& e) {
      text = e.what();
    }
    results.send(report(text));
    ::_exit(0);
  });
  auto text = std::string(results.receive<std::array<char, 256>>().data());
  cg.reap(child);
  return text;
}

bool is_unified(const Hierarchy& h) { return h.unified(); }

}  // namespace

TEST_CASE("cgroup resources: live apply writes what the cgroup files read back") {
  if (!live_available() || detect_layout() == Layout::v2) return;
  LiveCgroup cg;
  auto& m = *cg.manager;
  const auto memory = m.path("memory"), cpu = m.path("cpu"), cpuset = m.path("cpuset"), pids = m.path("pids"),
             blkio = m.path("blkio");
  REQUIRE(!memory.empty());
  m.apply(resources(R"({
    "devices": [{"allow": false, "access": "rwm"}],
    "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10, "useHierarchy": true},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 100},
    "blockIO": {"throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}]}
  })"));
  CHECK(trimmed(memory + "/memory.limit_in_bytes") == "67108864");
  CHECK(trimmed(memory + "/memory.soft_limit_in_bytes") == "33554432");
  CHECK(trimmed(memory + "/memory.swappiness") == "10");
  if (fs::exists(memory + "/memory.memsw.limit_in_bytes"))
    CHECK(trimmed(memory + "/memory.memsw.limit_in_bytes") == "134217728");
  CHECK(trimmed(cpu + "/cpu.shares") == "512");
  CHECK(trimmed(cpu + "/cpu.cfs_quota_us") == "50000");
  CHECK(trimmed(cpu + "/cpu.cfs_period_us") == "100000");
  CHECK(trimmed(cpuset + "/cpuset.cpus") == "0");
  CHECK(trimmed(cpuset + "/cpuset.mems") == "0");
  CHECK(trimmed(pids + "/pids.max") == "100");
  if (fs::exists("/sys/dev/block/254:0"))
    CHECK(contains(slurp(blkio + "/blkio.throttle.read_bps_device"), "254:0 1048576"));
  const auto list = slurp(m.path("devices") + "/devices.list");
  CHECK_FALSE(contains(list, "a *:* rwm"));
  CHECK(contains(list, "c 1:3 rwm"));
  CHECK(contains(list, "c 136:* rwm"));

  // memsw >= memory at every step: raising both writes swap first, lowering both memory first.
  m.apply(resources(R"({"memory": {"limit": 268435456, "swap": 536870912}})"));
  CHECK(trimmed(memory + "/memory.limit_in_bytes") == "268435456");
  m.apply(resources(R"({"memory": {"limit": 16777216, "swap": 33554432}})"));
  CHECK(trimmed(memory + "/memory.limit_in_bytes") == "16777216");
  m.apply(resources(R"({"memory": {"limit": -1}})"));  // and unlimited swap with it
  CHECK(trimmed(memory + "/memory.limit_in_bytes") == "9223372036854771712");
  m.apply(resources(R"({"pids": {"limit": -1}})"));
  CHECK(trimmed(pids + "/pids.max") == "max");

  // What this machine lacks fails the way runc fails there.
  if (!fs::exists(blkio + "/blkio.weight") && !fs::exists(blkio + "/blkio.bfq.weight"))
    CHECK(error_of([&] { m.apply(resources(R"({"blockIO": {"weight": 500}})")); }) ==
          "open " + blkio + "/blkio.bfq.weight: no such file or directory");
  if (m.path("net_cls").empty())
    CHECK(error_of([&] { m.apply(resources(R"({"network": {"classID": 1}})")); }) ==
          "cannot set net_cls limit: container could not join or create cgroup");
  if (m.path("hugetlb").empty() && m.layout() == Layout::hybrid) {
    auto e = error_of([&] { m.apply(resources(R"({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})")); });
    MESSAGE("hybrid hugetlb (cgroup2 root does not delegate it here): " << (e.empty() ? "applied" : e));
  }
  // unified keys land in the cgroup2 directory of a hybrid.
  if (m.layout() == Layout::hybrid) {
    m.apply(resources(R"({"unified": {"cgroup.max.descendants": "5"}})"));
    CHECK(trimmed(m.path("") + "/cgroup.max.descendants") == "5");
  }
}

TEST_CASE("cgroup resources: live update changes only what it is given") {
  if (!live_available() || detect_layout() == Layout::v2) return;
  LiveCgroup cg;
  auto& m = *cg.manager;
  const auto current = resources(R"({"memory": {"limit": 67108864}, "cpu": {"shares": 512, "quota": 50000}})");
  m.apply(current);
  auto merged = m.update(current, resources(R"({"cpu": {"quota": 20000}})"));
  CHECK(trimmed(m.path("memory") + "/memory.limit_in_bytes") == "67108864");
  CHECK(trimmed(m.path("cpu") + "/cpu.shares") == "512");
  CHECK(trimmed(m.path("cpu") + "/cpu.cfs_quota_us") == "20000");
  CHECK(merged.memory->limit == 67108864);
  CHECK(merged.cpu->quota == 20000);
  CHECK(merged.cpu->shares == 512u);
}

TEST_CASE("cgroup resources: live v1 devices rules decide what a process in the cgroup can open") {
  if (!live_available()) return;
  LiveCgroup cg;
  const ControllerMap controllers(cg.manager->placements());
  const auto* devices = controllers.v1("devices");
  if (!devices) return;
  // Exactly "deny all, allow /dev/null", below the Manager level (no default allow-list).
  set_devices_v1(ControllerFiles("devices", devices),
                 {{.type = 'a'}, {.type = 'c', .major = 1, .minor = 3, .allow = true}});
  CHECK(slurp(devices->file("devices.list")) == "c 1:3 rwm\n");
  CHECK(open_devices_in(cg, {"/dev/null", "/dev/zero"}) == "/dev/null=ok;/dev/zero=Operation not permitted;");

  // Through apply: runc's allow-list comes on top of the config's deny-all.
  cg.manager->apply(resources(R"({"devices": [{"allow": false, "access": "rwm"}]})"));
  CHECK(open_devices_in(cg, {"/dev/null", "/dev/zero", "/dev/kmsg"}) ==
        "/dev/null=ok;/dev/zero=ok;/dev/kmsg=Operation not permitted;");
  cg.manager->apply(resources(R"({"devices": [{"allow": true, "access": "rwm"}]})"));
  CHECK(open_devices_in(cg, {"/dev/kmsg"}) == "/dev/kmsg=ok;");
}

TEST_CASE("cgroup resources: live eBPF device filter on the cgroup2 hierarchy") {
  if (!live_available() || detect_layout() == Layout::v1) return;
  LiveCgroup cg(is_unified);  // only the cgroup2 side: devices go to an eBPF program there
  REQUIRE(cg.manager->layout() == Layout::v2);
  UniqueFd dir(cg.manager->unified_dir_fd());
  CHECK(attached_device_filter_ids(dir.get()).empty());

  cg.manager->apply(resources(R"({"devices": [{"allow": false, "access": "rwm"}]})"));
  CHECK(attached_device_filter_ids(dir.get()).size() == 1);
  CHECK(open_devices_in(cg, {"/dev/null", "/dev/zero", "/dev/kmsg"}) ==
        "/dev/null=ok;/dev/zero=ok;/dev/kmsg=Operation not permitted;");

  // Applying again replaces the program rather than stacking a second one.
  cg.manager->apply(resources(R"({"devices": [{"allow": false, "access": "rwm"},
      {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "r"}]})"));
  CHECK(attached_device_filter_ids(dir.get()).size() == 1);
  CHECK(open_devices_in(cg, {"/dev/kmsg"}) == "/dev/kmsg=ok;");

  attach_device_filter(dir.get(),
                       device_filter_program({{.type = 'a'}, {.type = 'c', .major = 1, .minor = 3, .allow = true}}));
  CHECK(open_devices_in(cg, {"/dev/null", "/dev/zero"}) == "/dev/null=ok;/dev/zero=Operation not permitted;");
}

TEST_CASE("cgroup resources: live stats for a child using memory") {
  if (!live_available()) return;
  LiveCgroup cg;
  auto& m = *cg.manager;
  m.apply(resources(R"({"memory": {"limit": 268435456}, "pids": {"limit": 50}})"));
  Pipe ready;
  pid_t child = cg.spawn([&] {
    m.enter_self(false);
    constexpr size_t kSize = 32 << 20;
    auto* p = static_cast<char*>(::malloc(kSize));
    for (size_t i = 0; i < kSize; i += 4096) p[i] = 1;  // touch every page
    ready.send(1);
    for (;;) ::pause();
  });
  ready.receive<int>();
  auto j = m.stats_json();
  MESSAGE("memory.usage " << j["memory"]["usage"].dump() << ", pids " << j["pids"].dump());
  CHECK(j["memory"]["usage"]["usage"].get<uint64_t>() >= (32u << 20));
  CHECK(j["memory"]["usage"]["limit"] == 268435456);
  CHECK(j["memory"]["raw"].contains(m.layout() == Layout::v2 ? "anon" : "rss"));
  CHECK(j["pids"]["current"] == 1);
  CHECK(j["pids"]["limit"] == 50);
  CHECK(j["cpu"]["usage"]["total"].get<uint64_t>() > 0);
  CHECK(j["network_interfaces"].is_null());
  ::kill(child, SIGKILL);
  cg.reap(child);
}

TEST_CASE("cgroup resources: live OOM kill fires the OOM event") {
  if (!live_available()) return;
  LiveCgroup cg;
  auto& m = *cg.manager;
  m.apply(resources(R"({"memory": {"limit": 8388608, "swap": 8388608}})"));
  auto oom = m.oom_events();
  CHECK(oom->consume() == 0);  // nothing yet, and never blocks
  pid_t child = cg.spawn([&] {
    m.enter_self(false);
    constexpr size_t kSize = 64 << 20;
    auto* p = static_cast<char*>(::malloc(kSize));
    for (size_t i = 0; i < kSize; i += 4096) p[i] = 1;
    ::_exit(0);
  });
  uint64_t kills = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (kills == 0 && std::chrono::steady_clock::now() < deadline) {
    pollfd p{oom->fd(), POLLIN, 0};
    if (::poll(&p, 1, 500) > 0) kills += oom->consume();
  }
  CHECK(kills >= 1);
  int status = cg.reap(child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  // The kernel's own count agrees.
  const auto counters =
      m.layout() == Layout::v2 ? m.path("") + "/memory.events" : m.path("memory") + "/memory.oom_control";
  CHECK(events_field(slurp(counters), "oom_kill") == std::to_string(kills));
}
