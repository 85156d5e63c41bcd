// Unit tests for the oci-spec library: parsing with JSON-path errors, serialization round trips,
// the `spec` template, state and features.
#include <doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include <oci/config.hpp>
#include <oci/features.hpp>
#include <oci/json_reader.hpp>
#include <oci/state.hpp>

using nlohmann::json;

namespace {

// Every field the library knows, written canonically (no defaults, no empty containers), so
// to_json(parse_config(kFullConfig)) must reproduce it exactly: this pins every JSON key name.
const char* const kFullConfig = R"({
  "ociVersion": "1.2.0",
  "root": {"path": "rootfs", "readonly": true},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "idmap"],
     "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
     "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}
  ],
  "process": {
    "terminal": true,
    "consoleSize": {"height": 24, "width": 80},
    "user": {"uid": 1000, "gid": 1001, "umask": 18, "additionalGids": [5, 20], "username": "app"},
    "args": ["/bin/app", "--flag"],
    "commandLine": "app --flag",
    "env": ["PATH=/usr/bin:/bin", "HOME=/home/app", "EMPTY="],
    "cwd": "/home/app",
    "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "inheritable": [],
                     "permitted": ["CAP_KILL"], "ambient": []},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024},
                {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 0}],
    "noNewPrivileges": true,
    "apparmorProfile": "docker-default",
    "oomScoreAdj": -500,
    "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                  "runtime": 1000000, "deadline": 2000000, "period": 3000000},
    "selinuxLabel": "system_u:system_r:container_t:s0:c1,c2",
    "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
    "execCPUAffinity": {"initial": "0", "final": "0-3"}
  },
  "hostname": "box",
  "domainname": "example.org",
  "hooks": {
    "prestart": [{"path": "/usr/bin/prestart"}],
    "createRuntime": [{"path": "/usr/bin/net-setup", "args": ["net-setup", "--up"], "env": ["A=1"], "timeout": 5}],
    "createContainer": [{"path": "/usr/bin/cc"}],
    "startContainer": [{"path": "/bin/sc"}],
    "poststart": [{"path": "/usr/bin/ps"}],
    "poststop": [{"path": "/usr/bin/cleanup", "timeout": 30}]
  },
  "annotations": {"io.deltabox.snapshots": "true", "org.example.key": "value"},
  "linux": {
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "4294967296"},
    "resources": {
      "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                  {"allow": true, "type": "b", "major": -1, "minor": -1, "access": "m"}],
      "memory": {"limit": 536870912, "reservation": 268435456, "swap": -1, "kernel": 0, "kernelTCP": 0,
                 "swappiness": 60, "disableOOMKiller": false, "useHierarchy": true, "checkBeforeUpdate": true},
      "cpu": {"shares": 1024, "quota": 50000, "burst": 10000, "period": 100000, "realtimeRuntime": 950000,
              "realtimePeriod": 1000000, "cpus": "0-3", "mems": "0", "idle": 0},
      "pids": {"limit": 100},
      "blockIO": {"weight": 500, "leafWeight": 300,
                  "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 400}, {"major": 8, "minor": 16}],
                  "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                  "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                  "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                  "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]},
      "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "1GB", "limit": 0}],
      "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
      "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 7}},
      "unified": {"memory.high": "max", "io.weight": "default 100"}
    },
    "cgroupsPath": "/deltabox/test",
    "namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/test"}, {"type": "mount"},
                   {"type": "ipc"}, {"type": "uts"}, {"type": "user"}, {"type": "cgroup"}, {"type": "time"}],
    "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
                {"type": "p", "path": "/dev/myfifo", "major": 0, "minor": 0}],
    "seccomp": {
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
      "listenerPath": "/run/seccomp.sock", "listenerMetadata": "meta",
      "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "args": [{"index": 0, "value": 8, "valueTwo": 4294967295, "op": "SCMP_CMP_MASKED_EQ"},
                  {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}
      ]
    },
    "rootfsPropagation": "rslave",
    "maskedPaths": ["/proc/kcore", "/sys/firmware"],
    "readonlyPaths": ["/proc/sys"],
    "mountLabel": "system_u:object_r:container_file_t:s0",
    "intelRdt": {"closID": "guaranteed", "l3CacheSchema": "L3:0=7f0", "memBwSchema": "MB:0=20",
                 "enableCMT": true, "enableMBM": false},
    "personality": {"domain": "LINUX32"},
    "timeOffsets": {"monotonic": {"secs": -3600, "nanosecs": 0}, "boottime": {"secs": 86400, "nanosecs": 500}}
  }
})";

// The smallest config that parses; the malformed corpus mutates one field of it at a time.
json minimal_config() {
  return json::parse(R"({
    "ociVersion": "1.2.0",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, {"destination": "/dev"},
               {"destination": "/tmp", "type": "tmpfs"}],
    "hooks": {},
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "resources": {"memory": {}}}
  })");
}

// Runs `parse` and returns the SpecError it throws; fails the test on success or on any other
// exception (a leaked nlohmann error would be a bug).
template <class Parse>
std::optional<oci::SpecError> spec_error_of(Parse parse) {
  try {
    parse();
  } catch (const oci::SpecError& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL_CHECK("unexpected exception type: " << e.what());
    return std::nullopt;
  }
  FAIL_CHECK("no error thrown");
  return std::nullopt;
}

std::string error_path(const json& config) {
  auto e = spec_error_of([&] { oci::parse_config(config); });
  return e ? e->path() : "<none>";
}

std::string error_message(const json& config) {
  auto e = spec_error_of([&] { oci::parse_config(config); });
  return e ? e->what() : "<none>";
}

json round_trip(const json& j) { return oci::to_json(oci::parse_config(j)); }

// Marks a Mutation that removes the member instead of replacing it.
const json kRemove(json::value_t::discarded);

struct Mutation {
  const char* pointer;  // JSON pointer into minimal_config()
  json value;           // kRemove: erase the member
  const char* expected_path;
};

json mutated(const Mutation& m) {
  json config = minimal_config();
  json::json_pointer ptr(m.pointer);
  if (m.value.is_discarded()) {
    config[ptr.parent_pointer()].erase(ptr.back());
  } else {
    config[ptr] = m.value;
  }
  return config;
}

const json kUint40 = uint64_t{1} << 40;

const std::vector<Mutation> kMalformed = {
    // top level
    {"/ociVersion", kRemove, "ociVersion"},
    {"/ociVersion", 1, "ociVersion"},
    {"/ociVersion", "", "ociVersion"},
    {"/hostname", 5, "hostname"},
    {"/domainname", json::array(), "domainname"},
    {"/annotations", json::array({"a"}), "annotations"},
    {"/annotations", {{"a", 1}}, R"(annotations["a"])"},
    {"/annotations", {{"", "x"}}, "annotations"},
    // root
    {"/root", "rootfs", "root"},
    {"/root/path", kRemove, "root.path"},
    {"/root/readonly", "yes", "root.readonly"},
    // mounts
    {"/mounts", json::object(), "mounts"},
    {"/mounts/2", "tmp", "mounts[2]"},
    {"/mounts/2/destination", kRemove, "mounts[2].destination"},
    {"/mounts/0/options", json::array({"ro", 1}), "mounts[0].options[1]"},
    {"/mounts/1/type", false, "mounts[1].type"},
    {"/mounts/0/uidMappings", json::parse(R"([{"containerID": 0, "hostID": 1000, "size": -1}])"),
     "mounts[0].uidMappings[0].size"},
    // process
    {"/process", json::array(), "process"},
    {"/process/args", kRemove, "process.args"},
    {"/process/args", json::array(), "process.args"},
    {"/process/args", "sh", "process.args"},
    {"/process/args", json::array({"sh", nullptr}), "process.args[1]"},
    {"/process/cwd", "relative/dir", "process.cwd"},
    {"/process/cwd", kRemove, "process.cwd"},
    {"/process/user", 0, "process.user"},
    {"/process/user/uid", kUint40, "process.user.uid"},
    {"/process/user/gid", -1, "process.user.gid"},
    {"/process/user/uid", 1.5, "process.user.uid"},
    {"/process/user/uid", "0", "process.user.uid"},
    {"/process/user/additionalGids", json::array({1, "2"}), "process.user.additionalGids[1]"},
    {"/process/terminal", 1, "process.terminal"},
    {"/process/env", json::array({"NOEQUALS"}), "process.env[0]"},
    {"/process/env", "PATH=/bin", "process.env"},
    {"/process/rlimits", json::parse(R"([{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}])"), "process.rlimits[0].type"},
    {"/process/rlimits", json::parse(R"([{"type": "RLIMIT_NOFILE", "soft": 1}])"), "process.rlimits[0].hard"},
    {"/process/rlimits", json::parse(R"([{"type": "RLIMIT_NOFILE", "hard": 1, "soft": -1}])"), "process.rlimits[0].soft"},
    {"/process/rlimits",
     json::parse(R"([{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}, {"type": "RLIMIT_NOFILE", "hard": 2, "soft": 2}])"),
     "process.rlimits"},
    {"/process/capabilities/bounding", "CAP_KILL", "process.capabilities.bounding"},
    {"/process/capabilities/ambient", json::array({42}), "process.capabilities.ambient[0]"},
    {"/process/consoleSize", {{"height", 24}}, "process.consoleSize.width"},
    {"/process/oomScoreAdj", uint64_t{1} << 31, "process.oomScoreAdj"},
    {"/process/scheduler", {{"policy", "SCHED_FAST"}}, "process.scheduler.policy"},
    {"/process/scheduler", {{"policy", "SCHED_OTHER"}, {"flags", {"X"}}}, "process.scheduler.flags[0]"},
    {"/process/ioPriority", {{"class", "IOPRIO_CLASS_BE"}, {"priority", 8}}, "process.ioPriority.priority"},
    {"/process/ioPriority", {{"priority", 1}}, "process.ioPriority.class"},
    {"/process/execCPUAffinity", {{"initial", 0}}, "process.execCPUAffinity.initial"},
    // hooks
    {"/hooks", "none", "hooks"},
    {"/hooks/prestart", json::parse(R"([{"path": "hook"}])"), "hooks.prestart[0].path"},
    {"/hooks/poststop", json::parse(R"([{"path": "/bin/true", "timeout": 0}])"), "hooks.poststop[0].timeout"},
    {"/hooks/poststart", json::parse(R"([{"path": "/bin/true", "timeout": -5}])"), "hooks.poststart[0].timeout"},
    {"/hooks/createRuntime", {{"path", "/x"}}, "hooks.createRuntime"},
    {"/hooks/startContainer", json::parse(R"([{"args": ["x"]}])"), "hooks.startContainer[0].path"},
    // linux
    {"/linux", "x", "linux"},
    {"/linux/namespaces", {{"type", "pid"}}, "linux.namespaces"},
    {"/linux/namespaces/1/type", "foo", "linux.namespaces[1].type"},
    {"/linux/namespaces/1/type", kRemove, "linux.namespaces[1].type"},
    {"/linux/namespaces/1", {{"type", "pid"}}, "linux.namespaces"},
    {"/linux/namespaces/1/path", "proc/1/ns/mnt", "linux.namespaces[1].path"},
    {"/linux/uidMappings", json::parse(R"([{"containerID": 0, "hostID": 1000, "size": 1}])"), "linux.uidMappings"},
    {"/linux/namespaces/2", {{"type", "user"}}, "linux.uidMappings"},
    {"/linux/uidMappings", json::parse(R"([{"containerID": 0, "hostID": 1000}])"), "linux.uidMappings[0].size"},
    {"/linux/gidMappings", json::parse(R"([{"containerID": 0, "hostID": 4294967296, "size": 1}])"),
     "linux.gidMappings[0].hostID"},
    {"/linux/devices", json::parse(R"([{"type": "x", "path": "/dev/x", "major": 1, "minor": 1}])"),
     "linux.devices[0].type"},
    {"/linux/devices", json::parse(R"([{"type": "c", "path": "/dev/x", "minor": 1}])"), "linux.devices[0].major"},
    {"/linux/devices", json::parse(R"([{"type": "c", "path": "dev/x", "major": 1, "minor": 1}])"),
     "linux.devices[0].path"},
    {"/linux/devices", json::parse(R"([{"type": "c", "path": "/dev/x", "major": 1, "minor": 1, "fileMode": -1}])"),
     "linux.devices[0].fileMode"},
    {"/linux/seccomp", json::object(), "linux.seccomp.defaultAction"},
    {"/linux/seccomp", {{"defaultAction", "SCMP_ACT_NOPE"}}, "linux.seccomp.defaultAction"},
    {"/linux/seccomp", json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]})"),
     "linux.seccomp.syscalls[0].names"},
    {"/linux/seccomp",
     json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW",
                     "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "LT"}]}]})"),
     "linux.seccomp.syscalls[0].args[0].op"},
    {"/linux/seccomp", json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": "x86"})"),
     "linux.seccomp.architectures"},
    {"/linux/resources", json::array(), "linux.resources"},
    {"/linux/resources/memory/limit", "1G", "linux.resources.memory.limit"},
    {"/linux/resources/memory/limit", 1e20, "linux.resources.memory.limit"},
    {"/linux/resources/memory/swappiness", -1, "linux.resources.memory.swappiness"},
    {"/linux/resources/devices", json::parse(R"([{"access": "rwm"}])"), "linux.resources.devices[0].allow"},
    {"/linux/resources/devices", json::parse(R"([{"allow": true, "access": "rwx"}])"), "linux.resources.devices[0].access"},
    {"/linux/resources/devices", json::parse(R"([{"allow": true, "type": "u"}])"), "linux.resources.devices[0].type"},
    {"/linux/resources/blockIO/weight", 70000, "linux.resources.blockIO.weight"},
    {"/linux/resources/blockIO/throttleReadBpsDevice", json::parse(R"([{"major": 8, "minor": 0}])"),
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate"},
    {"/linux/resources/pids", json::object(), "linux.resources.pids.limit"},
    {"/linux/resources/rdma", {{"mlx", {{"hcaHandles", -1}}}}, R"(linux.resources.rdma["mlx"].hcaHandles)"},
    {"/linux/resources/unified", {{"memory.max", 5}}, R"(linux.resources.unified["memory.max"])"},
    {"/linux/resources/hugepageLimits", json::parse(R"([{"limit": 1}])"), "linux.resources.hugepageLimits[0].pageSize"},
    {"/linux/resources/network/priorities", json::parse(R"([{"name": "eth0"}])"),
     "linux.resources.network.priorities[0].priority"},
    {"/linux/rootfsPropagation", "sideways", "linux.rootfsPropagation"},
    {"/linux/timeOffsets", {{"realtime", {{"secs", 1}}}}, R"(linux.timeOffsets["realtime"])"},
    {"/linux/timeOffsets", {{"boottime", {{"nanosecs", -1}}}}, R"(linux.timeOffsets["boottime"].nanosecs)"},
    {"/linux/personality", {{"domain", "LINUX64"}}, "linux.personality.domain"},
    {"/linux/maskedPaths", json::array({1}), "linux.maskedPaths[0]"},
    {"/linux/sysctl", json::array(), "linux.sysctl"},
    {"/linux/intelRdt", {{"enableCMT", "true"}}, "linux.intelRdt.enableCMT"},
};

}  // namespace

TEST_CASE("oci-spec: the minimal config used by the malformed corpus is valid") {
  oci::Config c = oci::parse_config(minimal_config());
  CHECK(c.oci_version == "1.2.0");
  CHECK(c.process->args == std::vector<std::string>{"sh"});
  CHECK(c.mounts.size() == 3);
}

TEST_CASE("oci-spec: malformed configs name the first bad field") {
  REQUIRE(kMalformed.size() >= 40);
  for (const Mutation& m : kMalformed) {
    CAPTURE(std::string(m.pointer));
    CAPTURE(m.value.is_discarded() ? std::string("<removed>") : m.value.dump());
    CHECK(error_path(mutated(m)) == m.expected_path);
  }
}

TEST_CASE("oci-spec: error messages are short and name the problem") {
  auto with = [](const char* pointer, json value) { return mutated({pointer, std::move(value), ""}); };
  CHECK(error_message(with("/process/args", json::array())) == "process.args: must be a non-empty array of strings");
  CHECK(error_message(with("/process/cwd", "tmp")) == "process.cwd: must be an absolute path");
  CHECK(error_message(with("/ociVersion", kRemove)) == "ociVersion: required");
  CHECK(error_message(with("/root/path", kRemove)) == "root.path: required");
  CHECK(error_message(with("/mounts/0/destination", kRemove)) == "mounts[0].destination: required");
  CHECK(error_message(with("/linux/namespaces/1/type", "foo")) ==
        R"(linux.namespaces[1].type: unknown namespace type "foo")");
  CHECK(error_message(with("/linux/namespaces/1", {{"type", "pid"}})) == R"(linux.namespaces: duplicate namespace "pid")");
  CHECK(error_message(with("/process/user/uid", kUint40)) == "process.user.uid: must be an unsigned 32-bit integer");
  CHECK(error_message(with("/process/oomScoreAdj", "x")) == "process.oomScoreAdj: must be a 32-bit integer");
  CHECK(error_message(with("/linux/resources/memory/limit", 0.5)) == "linux.resources.memory.limit: must be a 64-bit integer");
  CHECK(error_message(with("/process/rlimits", json::parse(R"([{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}])"))) ==
        R"(process.rlimits[0].type: unknown rlimit "RLIMIT_FOO")");
  CHECK(error_message(with("/hooks/prestart", json::parse(R"([{"path": "x"}])"))) ==
        "hooks.prestart[0].path: must be an absolute path");
  CHECK(error_message(with("/hooks/prestart", json::parse(R"([{"path": "/x", "timeout": 0}])"))) ==
        "hooks.prestart[0].timeout: must be > 0");
  CHECK(error_message(with("/linux/uidMappings", json::parse(R"([{"containerID": 0, "hostID": 1, "size": 1}])"))) ==
        "linux.uidMappings: user namespace mappings specified but no user namespace");
  CHECK(error_message(with("/linux/seccomp", json::object())) == "linux.seccomp.defaultAction: required");
  CHECK(error_message(with("/root", 1)) == "root: must be an object");
  CHECK(error_message(with("/mounts", "x")) == "mounts: must be an array");
  CHECK(error_message(with("/process/args", "sh")) == "process.args: must be a non-empty array of strings");
  CHECK(error_message(with("/process/args", json::array({"sh", 1}))) == "process.args[1]: must be a string");
}

TEST_CASE("oci-spec: the top level must be a JSON object") {
  for (const json& top : {json::array(), json(nullptr), json("config"), json(42), json(true)}) {
    CAPTURE(top.dump());
    auto e = spec_error_of([&] { oci::parse_config(top); });
    REQUIRE(e);
    CHECK(e->path() == "");
    CHECK(std::string(e->what()) == "config must be a JSON object");
  }
}

TEST_CASE("oci-spec: invalid JSON text becomes SpecError with an empty path") {
  const std::vector<std::string> texts = {"", "{", "{\"ociVersion\": \"1.2.0\",}", "nope", "{\"a\": \"\xff\"}",
                                          "{\"ociVersion\": \"1.2.0\"} trailing"};
  for (const std::string& text : texts) {
    CAPTURE(text);
    auto e = spec_error_of([&] { oci::parse_config_text(text); });
    REQUIRE(e);
    CHECK(e->path() == "");
    CHECK(std::string(e->what()).starts_with("invalid JSON: "));
    CHECK(std::string(e->what()).find("[json.exception") == std::string::npos);
  }
  auto e = spec_error_of([] { oci::parse_config_text("[1, 2]"); });
  REQUIRE(e);
  CHECK(std::string(e->what()) == "config must be a JSON object");
}

TEST_CASE("oci-spec: unknown fields at every depth are ignored") {
  json config = minimal_config();
  json deep = json::array();
  for (int i = 0; i < 5000; ++i) deep = json::array({deep, {{"k", i}}});
  config["x-unknown"] = deep;
  config["vm"] = {{"hypervisor", {{"path", 1}}}};
  config["process"]["futureField"] = {1, 2, 3};
  config["process"]["user"]["sid"] = "S-1-5";
  config["mounts"][0]["propagation"] = nullptr;
  config["linux"]["netDevices"] = {{"eth0", {{"name", 5}}}};
  config["linux"]["namespaces"][0]["flags"] = "x";
  config["linux"]["resources"]["memory"]["unknownKnob"] = -1;
  config["hooks"]["preStop"] = "whatever";
  CHECK(oci::parse_config(config) == oci::parse_config(minimal_config()));
}

TEST_CASE("oci-spec: null means absent, as in Go") {
  json config = minimal_config();
  config["mounts"][0]["options"] = nullptr;
  config["process"]["user"]["additionalGids"] = nullptr;
  config["process"]["env"] = nullptr;
  config["process"]["capabilities"] = nullptr;
  config["hostname"] = nullptr;
  config["hooks"]["prestart"] = nullptr;
  config["linux"]["seccomp"] = nullptr;
  config["linux"]["namespaces"][0]["path"] = nullptr;
  CHECK(oci::parse_config(config) == oci::parse_config(minimal_config()));

  config["process"]["cwd"] = nullptr;  // ...so a null required field is a missing one
  CHECK(error_message(config) == "process.cwd: required");
}

TEST_CASE("oci-spec: full config parses every field") {
  oci::Config c = oci::parse_config_text(kFullConfig);
  CHECK(c.oci_version == "1.2.0");
  CHECK(c.root == oci::Root{"rootfs", true});
  REQUIRE(c.mounts.size() == 2);
  CHECK(c.mounts[1].options == std::vector<std::string>{"rbind", "ro", "idmap"});
  CHECK(c.mounts[1].gid_mappings.at(0).host_id == 200000);
  CHECK(c.mounts[0].options.empty());

  REQUIRE(c.process);
  const oci::Process& p = *c.process;
  CHECK(p.terminal);
  CHECK(p.console_size->width == 80);
  CHECK(p.user.uid == 1000);
  CHECK(p.user.gid == 1001);
  CHECK(p.user.umask == 18u);
  CHECK(p.user.additional_gids == std::vector<uint32_t>{5, 20});
  CHECK(p.capabilities->inheritable == std::vector<std::string>{});  // present and empty
  CHECK(p.rlimits.at(1).hard == UINT64_MAX);
  CHECK(p.oom_score_adj == -500);
  CHECK(p.scheduler->nice == -5);
  CHECK(p.io_priority->io_class == "IOPRIO_CLASS_BE");
  CHECK(p.exec_cpu_affinity->final_ == "0-3");

  CHECK(c.hooks->create_runtime.at(0).timeout == 5);
  CHECK(c.hooks->start_container.at(0).path == "/bin/sc");
  CHECK(c.annotations.at(oci::kSnapshotsAnnotation) == "true");

  REQUIRE(c.linux);
  const oci::Linux& l = *c.linux;
  CHECK(l.resources->memory->swap == -1);
  CHECK(l.resources->memory->disable_oom_killer == false);
  CHECK(l.resources->cpu->idle == 0);
  CHECK(l.resources->devices.at(2).major == -1);
  CHECK(l.resources->block_io->weight_device.at(1).weight == std::nullopt);
  CHECK(l.resources->rdma.at("mlx4_0").hca_handles == std::nullopt);
  CHECK(l.resources->unified.at("io.weight") == "default 100");
  CHECK(l.namespaces.size() == 8);
  CHECK(c.find_namespace(oci::NamespaceType::network)->path == "/var/run/netns/test");
  CHECK(c.has_namespace(oci::NamespaceType::time));
  CHECK(l.devices.at(1).type == "p");
  CHECK(l.seccomp->syscalls.at(1).args.at(0).value_two == 4294967295u);
  CHECK(l.seccomp->syscalls.at(1).errno_ret == 38u);
  CHECK(l.intel_rdt->enable_mbm == false);
  CHECK(l.time_offsets.at("monotonic").secs == -3600);
  CHECK(l.personality->domain == "LINUX32");
}

TEST_CASE("oci-spec: full config round trip reproduces the input exactly") {
  json input = json::parse(kFullConfig);
  json output = round_trip(input);
  CHECK(output == input);
  if (output != input) MESSAGE("diff: " << json::diff(input, output).dump());
  CHECK(oci::parse_config(output) == oci::parse_config(input));
}

TEST_CASE("oci-spec: to_json writes required fields and omits absent ones") {
  oci::Config c{.oci_version = "1.2.0"};
  c.process = oci::Process{.args = {"true"}, .cwd = "/"};
  json j = oci::to_json(c);
  CHECK(j == json::parse(R"({"ociVersion": "1.2.0", "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}})"));
  CHECK(oci::to_json(oci::Resources{}) == json::object());
  CHECK(round_trip(minimal_config()) == round_trip(round_trip(minimal_config())));
}

TEST_CASE("oci-spec: default_config is runc's spec template") {
  oci::Config c = oci::default_config();
  CHECK(c.oci_version == oci::kSpecVersion);
  CHECK(std::string(oci::kSpecVersion) == "1.2.0");
  CHECK(c.root == oci::Root{"rootfs", true});
  CHECK(c.hostname == "deltabox");
  CHECK(c.annotations == std::map<std::string, std::string>{{"io.deltabox.snapshots", "true"}});

  const oci::Process& p = c.process.value();
  CHECK(p.terminal);
  CHECK(p.args == std::vector<std::string>{"sh"});
  CHECK(p.env == std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"});
  CHECK(p.cwd == "/");
  CHECK(p.user == oci::User{});
  CHECK(p.no_new_privileges);
  const std::vector<std::string> caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  CHECK(p.capabilities->bounding == caps);
  CHECK(p.capabilities->effective == caps);
  CHECK(p.capabilities->permitted == caps);
  CHECK_FALSE(p.capabilities->inheritable);
  CHECK(p.capabilities->ambient == caps);
  CHECK(p.rlimits == std::vector<oci::Rlimit>{{"RLIMIT_NOFILE", 1024, 1024}});

  std::vector<std::string> destinations;
  for (const oci::Mount& m : c.mounts) destinations.push_back(m.destination);
  CHECK(destinations ==
        std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"});
  CHECK(c.mounts[2].options ==
        std::vector<std::string>{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"});
  CHECK(c.mounts[6].options == std::vector<std::string>{"nosuid", "noexec", "nodev", "relatime", "ro"});

  const oci::Linux& l = c.linux.value();
  std::vector<std::string> namespaces;
  for (const oci::Namespace& ns : l.namespaces) namespaces.push_back(oci::namespace_type_name(ns.type));
  CHECK(namespaces == std::vector<std::string>{"pid", "network", "ipc", "uts", "mount"});
  CHECK(l.resources->devices == std::vector<oci::DeviceCgroupRule>{{.allow = false, .access = "rwm"}});
  CHECK(l.masked_paths.size() == 10);
  CHECK(l.masked_paths.front() == "/proc/acpi");
  CHECK(l.readonly_paths ==
        std::vector<std::string>{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"});
  CHECK(l.uid_mappings.empty());

  json j = oci::to_json(c);
  CHECK(j["linux"]["resources"]["devices"] == json::parse(R"([{"allow": false, "access": "rwm"}])"));
  CHECK(j["mounts"][0] == json::parse(R"({"destination": "/proc", "type": "proc", "source": "proc"})"));
  CHECK(oci::parse_config(j) == c);
}

TEST_CASE("oci-spec: rootless default_config follows runc's ToRootless") {
  oci::Config c = oci::default_config(true, 1000, 1001);
  const oci::Linux& l = c.linux.value();
  CHECK_FALSE(c.has_namespace(oci::NamespaceType::network));
  CHECK(l.namespaces.back().type == oci::NamespaceType::user);
  CHECK(l.uid_mappings == std::vector<oci::IdMapping>{{0, 1000, 1}});
  CHECK(l.gid_mappings == std::vector<oci::IdMapping>{{0, 1001, 1}});
  CHECK_FALSE(l.resources);

  const oci::Mount& sys = c.mounts.at(5);
  CHECK(sys.destination == "/sys");
  CHECK(sys.type == "none");
  CHECK(sys.source == "/sys");
  CHECK(sys.options == std::vector<std::string>{"rbind", "nosuid", "noexec", "nodev", "ro"});
  CHECK(c.mounts.at(2).options == std::vector<std::string>{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"});
  CHECK(c.mounts.size() == 7);
  CHECK(c.annotations.at("io.deltabox.snapshots") == "true");

  CHECK(oci::parse_config(oci::to_json(c)) == c);  // valid: a new user namespace with mappings
}

TEST_CASE("oci-spec: user namespace mappings rules") {
  json config = minimal_config();
  config["linux"]["namespaces"].push_back({{"type", "user"}, {"path", "/proc/42/ns/user"}});
  CHECK_NOTHROW(oci::parse_config(config));  // joined: the owner already has mappings

  config["linux"]["namespaces"].back().erase("path");
  config["linux"]["uidMappings"] = json::parse(R"([{"containerID": 0, "hostID": 1000, "size": 1}])");
  CHECK(error_message(config) == "linux.gidMappings: required when creating a user namespace");
  config["linux"]["gidMappings"] = config["linux"]["uidMappings"];
  CHECK_NOTHROW(oci::parse_config(config));
}

TEST_CASE("oci-spec: parse_process serves exec --process") {
  json process = json::parse(R"({"args": ["ls", "-l"], "cwd": "/tmp", "env": ["A=b"], "terminal": false})");
  oci::Process p = oci::parse_process(process);
  CHECK(p.args == std::vector<std::string>{"ls", "-l"});
  CHECK(p.user == oci::User{});  // absent user means root, as with runc
  CHECK(oci::parse_process(oci::to_json(p)) == p);

  auto e = spec_error_of([] { oci::parse_process(json::parse(R"({"args": ["ls"], "cwd": "x"})")); });
  REQUIRE(e);
  CHECK(e->path() == "process.cwd");
  e = spec_error_of([] { oci::parse_process(json::parse(R"({"args": "ls", "cwd": "/"})"), "args-file"); });
  REQUIRE(e);
  CHECK(e->path() == "args-file.args");
  e = spec_error_of([] { oci::parse_process(json::array()); });
  REQUIRE(e);
  CHECK(std::string(e->what()) == "process: must be an object");
}

TEST_CASE("oci-spec: parse_resources serves update --resources") {
  json resources = json::parse(R"({"memory": {"limit": 1048576}, "pids": {"limit": -1}, "cpu": {"cpus": "1"}})");
  oci::Resources r = oci::parse_resources(resources);
  CHECK(r.memory->limit == 1048576);
  CHECK(r.pids->limit == -1);
  CHECK(oci::to_json(r) == resources);

  auto e = spec_error_of([] { oci::parse_resources(json::parse(R"({"cpu": {"shares": -2}})")); });
  REQUIRE(e);
  CHECK(e->path() == "linux.resources.cpu.shares");
}

TEST_CASE("oci-spec: load_config reads files and reports open errors") {
  auto e = spec_error_of([] { oci::load_config("/nonexistent-deltabox/config.json"); });
  REQUIRE(e);
  CHECK(e->path() == "");
  CHECK(std::string(e->what()) == "open /nonexistent-deltabox/config.json: No such file or directory");

  std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("deltabox-oci-spec-" + std::to_string(getpid()) + ".json");
  {
    std::ofstream out(file);
    out << kFullConfig;
  }
  CHECK(oci::load_config(file) == oci::parse_config_text(kFullConfig));
  {
    std::ofstream out(file);
    out << "{\"ociVersion\": ";
  }
  e = spec_error_of([&] { oci::load_config(file); });
  std::filesystem::remove(file);
  REQUIRE(e);
  CHECK(std::string(e->what()).starts_with("invalid JSON: "));
}

TEST_CASE("oci-spec: namespace names map both ways") {
  for (auto type : {oci::NamespaceType::pid, oci::NamespaceType::network, oci::NamespaceType::mount,
                    oci::NamespaceType::ipc, oci::NamespaceType::uts, oci::NamespaceType::user,
                    oci::NamespaceType::cgroup, oci::NamespaceType::time}) {
    CHECK(oci::namespace_type_from_name(oci::namespace_type_name(type)) == type);
  }
  CHECK(std::string(oci::namespace_type_name(oci::NamespaceType::network)) == "network");
  CHECK_FALSE(oci::namespace_type_from_name("net"));
  CHECK_FALSE(oci::namespace_type_from_name(""));
  CHECK(oci::Config{}.find_namespace(oci::NamespaceType::pid) == nullptr);
}

TEST_CASE("oci-spec: JsonNode reads typed values with paths") {
  json doc = json::parse(R"({"a": {"list": [1, 2, 300], "big": 4294967296, "neg": -1, "map": {"x.y": true}}})");
  oci::JsonNode root(doc, "");
  oci::JsonNode a = root.field("a");
  CHECK(a.path() == "a");
  CHECK_THROWS_WITH_AS(a.req<std::vector<uint8_t>>("list"), "a.list[2]: must be an unsigned 8-bit integer",
                       oci::SpecError);
  CHECK(a.req<int64_t>("big") == 4294967296);
  CHECK_THROWS_WITH_AS(a.req<uint32_t>("big"), "a.big: must be an unsigned 32-bit integer", oci::SpecError);
  CHECK(a.req<int16_t>("neg") == -1);
  CHECK_THROWS_WITH_AS(a.req<uint64_t>("neg"), "a.neg: must be an unsigned 64-bit integer", oci::SpecError);
  CHECK(a.get<int>("missing", 7) == 7);
  CHECK_FALSE(a.opt<bool>("missing"));
  CHECK_THROWS_WITH_AS(a.req<bool>("missing"), "a.missing: required", oci::SpecError);
  using StringMap = std::map<std::string, std::string>;
  CHECK_THROWS_WITH_AS(a.req<StringMap>("map"), R"(a.map["x.y"]: must be a string)", oci::SpecError);
  CHECK_THROWS_WITH_AS(a.field("list").field("x"), "a.list: must be an object", oci::SpecError);
}

TEST_CASE("oci-spec: state serialization") {
  oci::State s{.oci_version = "1.2.0", .id = "c1", .status = oci::Status::running, .pid = 4242, .bundle = "/b"};
  json j = oci::to_json(s);
  CHECK(j == json::parse(R"({"ociVersion": "1.2.0", "id": "c1", "status": "running", "pid": 4242, "bundle": "/b"})"));
  CHECK(oci::parse_state(j) == s);

  s.annotations = {{"k", "v"}};
  s.status = oci::Status::stopped;
  s.pid = 0;
  j = oci::to_json(s);
  CHECK(j["annotations"] == json{{"k", "v"}});
  CHECK(j["status"] == "stopped");
  CHECK(oci::parse_state(j) == s);

  for (auto status : {oci::Status::creating, oci::Status::created, oci::Status::running, oci::Status::paused,
                      oci::Status::stopped})
    CHECK(oci::status_from_name(oci::status_name(status)) == status);
  CHECK_FALSE(oci::status_from_name("exited"));

  j["status"] = "exited";
  CHECK_THROWS_WITH_AS(oci::parse_state(j), R"(status: unknown status "exited")", oci::SpecError);
  j["status"] = "created";
  j["pid"] = -3;
  CHECK_THROWS_WITH_AS(oci::parse_state(j), "pid: must not be negative", oci::SpecError);
  j.erase("bundle");
  j["pid"] = 1;
  CHECK_THROWS_WITH_AS(oci::parse_state(j), "bundle: required", oci::SpecError);
  CHECK_THROWS_WITH_AS(oci::parse_state(json::array()), "state must be a JSON object", oci::SpecError);
}

TEST_CASE("oci-spec: features serialization distinguishes unknown from empty") {
  oci::Features minimal{.oci_version_min = "1.0.0", .oci_version_max = "1.2.0"};
  CHECK(oci::to_json(minimal) == json::parse(R"({"ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0"})"));

  oci::Features f = minimal;
  f.hooks = std::vector<std::string>{"prestart", "poststop"};
  f.mount_options = std::vector<std::string>{};
  f.annotations = std::map<std::string, std::string>{{"org.opencontainers.runc.checkpoint.enabled", "true"}};
  f.potentially_unsafe_config_annotations = std::vector<std::string>{"bundle", "org.systemd.property."};
  f.linux = oci::LinuxFeatures{
      .namespaces = std::vector<std::string>{"pid", "user"},
      .capabilities = std::vector<std::string>{"CAP_KILL"},
      .cgroup = oci::CgroupFeatures{.v1 = false, .v2 = true, .systemd = true, .systemd_user = true},
      .seccomp = oci::SeccompFeatures{.enabled = true,
                                      .actions = std::vector<std::string>{"SCMP_ACT_ALLOW"},
                                      .operators = std::vector<std::string>{"SCMP_CMP_EQ"},
                                      .archs = std::vector<std::string>{"SCMP_ARCH_X86_64"},
                                      .known_flags = std::vector<std::string>{"SECCOMP_FILTER_FLAG_LOG"},
                                      .supported_flags = std::vector<std::string>{}},
      .apparmor = oci::EnabledFeature{false},
      .selinux = oci::EnabledFeature{},
      .intel_rdt = oci::EnabledFeature{true},
      .mount_extensions = oci::MountExtensionsFeatures{.idmap = oci::EnabledFeature{true}}};
  CHECK(oci::to_json(f) == json::parse(R"({
    "ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0",
    "hooks": ["prestart", "poststop"],
    "mountOptions": [],
    "linux": {
      "namespaces": ["pid", "user"],
      "capabilities": ["CAP_KILL"],
      "cgroup": {"v1": false, "v2": true, "systemd": true, "systemdUser": true},
      "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW"], "operators": ["SCMP_CMP_EQ"],
                  "archs": ["SCMP_ARCH_X86_64"], "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"], "supportedFlags": []},
      "apparmor": {"enabled": false},
      "selinux": {},
      "intelRdt": {"enabled": true},
      "mountExtensions": {"idmap": {"enabled": true}}
    },
    "annotations": {"org.opencontainers.runc.checkpoint.enabled": "true"},
    "potentiallyUnsafeConfigAnnotations": ["bundle", "org.systemd.property."]
  })"));
}
