// Parsing, validation and serialization of config.json. Readers and writers sit side by side per
// section so the two directions stay symmetric; validation is limited to what the spec itself
// defines (vocabularies, required fields, absolute paths), never host capabilities.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

#include "oci/config.hpp"
#include "oci/json_reader.hpp"
#include "json_writer.hpp"

namespace oci {
namespace {

using nlohmann::json;
using namespace json_writer;
using Strings = std::vector<std::string>;
using StringMap = std::map<std::string, std::string>;

// ---------------------------------------------------------------------------------------------
// Vocabularies the spec defines. `what` names the vocabulary in "unknown <what> "<value>"".

struct Vocabulary {
  const char* what;
  std::span<const std::string_view> names;

  bool contains(std::string_view name) const { return std::ranges::find(names, name) != names.end(); }
};

constexpr std::string_view kNamespaceNames[] = {"pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"};
constexpr NamespaceType kNamespaceTypes[] = {NamespaceType::pid,  NamespaceType::network, NamespaceType::mount,
                                             NamespaceType::ipc,  NamespaceType::uts,     NamespaceType::user,
                                             NamespaceType::cgroup, NamespaceType::time};

constexpr std::string_view kRlimitNames[] = {
    "RLIMIT_AS",     "RLIMIT_CORE",   "RLIMIT_CPU",   "RLIMIT_DATA",   "RLIMIT_FSIZE",      "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",     "RLIMIT_RSS",
    "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"};
constexpr Vocabulary kRlimit{"rlimit", kRlimitNames};

constexpr std::string_view kSchedPolicyNames[] = {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR",      "SCHED_BATCH",
                                                  "SCHED_ISO",   "SCHED_IDLE", "SCHED_DEADLINE"};
constexpr Vocabulary kSchedPolicy{"scheduler policy", kSchedPolicyNames};

constexpr std::string_view kSchedFlagNames[] = {
    "SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM",        "SCHED_FLAG_DL_OVERRUN",    "SCHED_FLAG_KEEP_POLICY",
    "SCHED_FLAG_KEEP_PARAMS",   "SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"};
constexpr Vocabulary kSchedFlag{"scheduler flag", kSchedFlagNames};

constexpr std::string_view kIoPrioClassNames[] = {"IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"};
constexpr Vocabulary kIoPrioClass{"I/O priority class", kIoPrioClassNames};

constexpr std::string_view kDeviceTypeNames[] = {"c", "b", "u", "p"};
constexpr Vocabulary kDeviceType{"device type", kDeviceTypeNames};

constexpr std::string_view kCgroupDeviceTypeNames[] = {"a", "c", "b"};
constexpr Vocabulary kCgroupDeviceType{"device type", kCgroupDeviceTypeNames};

constexpr std::string_view kSeccompActionNames[] = {
    "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",  "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",        "SCMP_ACT_LOG",         "SCMP_ACT_NOTIFY"};
constexpr Vocabulary kSeccompAction{"seccomp action", kSeccompActionNames};

constexpr std::string_view kSeccompOpNames[] = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",       "SCMP_CMP_EQ",
                                                "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"};
constexpr Vocabulary kSeccompOp{"seccomp operator", kSeccompOpNames};

// The spec lists the first four; runc also accepts the recursive forms, so configs use them.
constexpr std::string_view kPropagationNames[] = {"shared",  "slave",  "private",  "unbindable",
                                                  "rshared", "rslave", "rprivate", "runbindable"};
constexpr Vocabulary kPropagation{"rootfs propagation", kPropagationNames};

constexpr std::string_view kPersonalityDomainNames[] = {"LINUX", "LINUX32"};
constexpr Vocabulary kPersonalityDomain{"personality domain", kPersonalityDomainNames};

constexpr std::string_view kTimeClockNames[] = {"monotonic", "boottime"};
constexpr Vocabulary kTimeClock{"clock", kTimeClockNames};

// ---------------------------------------------------------------------------------------------
// Checked readers shared by the sections below.

// A string from `vocab`.
std::string enum_value(const JsonNode& node, const Vocabulary& vocab) {
  std::string value = node.as<std::string>();
  if (!vocab.contains(value)) node.fail(std::string("unknown ") + vocab.what + " " + json_quote(value));
  return value;
}

std::optional<std::string> opt_enum(const JsonNode& parent, std::string_view key, const Vocabulary& vocab) {
  JsonNode node = parent.field(key);
  if (node.absent()) return std::nullopt;
  return enum_value(node, vocab);
}

Strings enum_list(const JsonNode& node, const Vocabulary& vocab) {
  Strings out;
  for (const JsonNode& element : node.elements()) out.push_back(enum_value(element, vocab));
  return out;
}

// Required strings: an empty string is as useless as a missing one.
std::string required_string(const JsonNode& parent, std::string_view key) {
  JsonNode node = parent.require(key);
  std::string value = node.as<std::string>();
  if (value.empty()) node.fail("required");
  return value;
}

std::string absolute_path(const JsonNode& node) {
  std::string value = node.as<std::string>();
  if (value.empty() || value.front() != '/') node.fail("must be an absolute path");
  return value;
}

Strings non_empty_strings(const JsonNode& node) {
  const char* const problem = "must be a non-empty array of strings";
  if (node.absent() || !node.value().is_array() || node.value().empty()) node.fail(problem);
  return node.as<Strings>();
}

template <class T>
T positive(const JsonNode& node) {
  T value = node.as<T>();
  if (value <= 0) node.fail("must be > 0");
  return value;
}

// The spec forbids repeating some keyed entries (namespaces, rlimits); name the list and the key.
template <class Item, class Key>
void reject_duplicates(const JsonNode& list, const std::vector<Item>& items, Key key_of, const char* what) {
  for (size_t i = 0; i < items.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (key_of(items[i]) == key_of(items[j]))
        list.fail(std::string("duplicate ") + what + " " + json_quote(key_of(items[i])));
}

// ---------------------------------------------------------------------------------------------
// root, mounts, id mappings

Root read_root(const JsonNode& n) { return {.path = required_string(n, "path"), .readonly = n.get<bool>("readonly")}; }

json write_root(const Root& r) {
  json j{{"path", r.path}};
  put(j, "readonly", r.readonly);
  return j;
}

IdMapping read_id_mapping(const JsonNode& n) {
  return {.container_id = n.req<uint32_t>("containerID"),
          .host_id = n.req<uint32_t>("hostID"),
          .size = positive<uint32_t>(n.require("size"))};
}

json write_id_mapping(const IdMapping& m) {
  return {{"containerID", m.container_id}, {"hostID", m.host_id}, {"size", m.size}};
}

Mount read_mount(const JsonNode& n) {
  return {.destination = required_string(n, "destination"),
          .type = n.opt<std::string>("type"),
          .source = n.opt<std::string>("source"),
          .options = n.get<Strings>("options"),
          .uid_mappings = n.list("uidMappings", read_id_mapping),
          .gid_mappings = n.list("gidMappings", read_id_mapping)};
}

json write_mount(const Mount& m) {
  json j{{"destination", m.destination}};
  put(j, "type", m.type);
  put(j, "source", m.source);
  put(j, "options", m.options);
  put_list(j, "uidMappings", m.uid_mappings, write_id_mapping);
  put_list(j, "gidMappings", m.gid_mappings, write_id_mapping);
  return j;
}

// ---------------------------------------------------------------------------------------------
// process

ConsoleSize read_console_size(const JsonNode& n) {
  return {.height = n.req<uint32_t>("height"), .width = n.req<uint32_t>("width")};
}

json write_console_size(const ConsoleSize& c) { return {{"height", c.height}, {"width", c.width}}; }

// uid/gid are REQUIRED in the spec, but Go runtimes read a missing one as 0 and hand-written
// `exec -p` files rely on that, so absence means root here too.
User read_user(const JsonNode& n) {
  return {.uid = n.get<uint32_t>("uid"),
          .gid = n.get<uint32_t>("gid"),
          .umask = n.opt<uint32_t>("umask"),
          .additional_gids = n.get<std::vector<uint32_t>>("additionalGids"),
          .username = n.get<std::string>("username")};
}

json write_user(const User& u) {
  json j{{"uid", u.uid}, {"gid", u.gid}};
  put(j, "umask", u.umask);
  put(j, "additionalGids", u.additional_gids);
  put(j, "username", u.username);
  return j;
}

// Unknown capability names are kept: runc only warns about them, and the kernel decides.
Capabilities read_capabilities(const JsonNode& n) {
  return {.bounding = n.opt<Strings>("bounding"),
          .effective = n.opt<Strings>("effective"),
          .inheritable = n.opt<Strings>("inheritable"),
          .permitted = n.opt<Strings>("permitted"),
          .ambient = n.opt<Strings>("ambient")};
}

json write_capabilities(const Capabilities& c) {
  json j = json::object();
  put(j, "bounding", c.bounding);
  put(j, "effective", c.effective);
  put(j, "inheritable", c.inheritable);
  put(j, "permitted", c.permitted);
  put(j, "ambient", c.ambient);
  return j;
}

Rlimit read_rlimit(const JsonNode& n) {
  return {.type = enum_value(n.require("type"), kRlimit),
          .hard = n.req<uint64_t>("hard"),
          .soft = n.req<uint64_t>("soft")};
}

json write_rlimit(const Rlimit& r) { return {{"type", r.type}, {"hard", r.hard}, {"soft", r.soft}}; }

Scheduler read_scheduler(const JsonNode& n) {
  return {.policy = enum_value(n.require("policy"), kSchedPolicy),
          .nice = n.opt<int32_t>("nice"),
          .priority = n.opt<int32_t>("priority"),
          .flags = enum_list(n.field("flags"), kSchedFlag),
          .runtime = n.opt<uint64_t>("runtime"),
          .deadline = n.opt<uint64_t>("deadline"),
          .period = n.opt<uint64_t>("period")};
}

json write_scheduler(const Scheduler& s) {
  json j{{"policy", s.policy}};
  put(j, "nice", s.nice);
  put(j, "priority", s.priority);
  put(j, "flags", s.flags);
  put(j, "runtime", s.runtime);
  put(j, "deadline", s.deadline);
  put(j, "period", s.period);
  return j;
}

IoPriority read_io_priority(const JsonNode& n) {
  IoPriority io{.io_class = enum_value(n.require("class"), kIoPrioClass), .priority = n.req<int32_t>("priority")};
  if (io.priority < 0 || io.priority > 7) n.field("priority").fail("must be between 0 and 7");
  return io;
}

json write_io_priority(const IoPriority& io) { return {{"class", io.io_class}, {"priority", io.priority}}; }

CpuAffinity read_cpu_affinity(const JsonNode& n) {
  return {.initial = n.get<std::string>("initial"), .final_ = n.get<std::string>("final")};
}

json write_cpu_affinity(const CpuAffinity& a) {
  json j = json::object();
  put(j, "initial", a.initial);
  put(j, "final", a.final_);
  return j;
}

// Entries must look like environ(7) entries; runc rejects the same ones when it execs.
Strings read_env(const JsonNode& node) {
  Strings env;
  for (const JsonNode& element : node.elements()) {
    std::string entry = element.as<std::string>();
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) element.fail("must be NAME=VALUE, got " + json_quote(entry));
    env.push_back(std::move(entry));
  }
  return env;
}

Process read_process(const JsonNode& n) {
  Process p{.terminal = n.get<bool>("terminal"),
            .console_size = n.object("consoleSize", read_console_size),
            .user = n.object("user", read_user).value_or(User{}),
            .args = non_empty_strings(n.field("args")),
            .command_line = n.opt<std::string>("commandLine"),
            .env = read_env(n.field("env")),
            .cwd = absolute_path(n.require("cwd")),
            .capabilities = n.object("capabilities", read_capabilities),
            .rlimits = n.list("rlimits", read_rlimit),
            .no_new_privileges = n.get<bool>("noNewPrivileges"),
            .apparmor_profile = n.get<std::string>("apparmorProfile"),
            .oom_score_adj = n.opt<int32_t>("oomScoreAdj"),
            .scheduler = n.object("scheduler", read_scheduler),
            .selinux_label = n.get<std::string>("selinuxLabel"),
            .io_priority = n.object("ioPriority", read_io_priority),
            .exec_cpu_affinity = n.object("execCPUAffinity", read_cpu_affinity)};
  reject_duplicates(n.field("rlimits"), p.rlimits, [](const Rlimit& r) { return r.type; }, "rlimit");
  return p;
}

json write_process(const Process& p) {
  json j{{"user", write_user(p.user)}, {"cwd", p.cwd}};
  put(j, "terminal", p.terminal);
  put_object(j, "consoleSize", p.console_size, write_console_size);
  put(j, "args", p.args);
  put(j, "commandLine", p.command_line);
  put(j, "env", p.env);
  put_object(j, "capabilities", p.capabilities, write_capabilities);
  put_list(j, "rlimits", p.rlimits, write_rlimit);
  put(j, "noNewPrivileges", p.no_new_privileges);
  put(j, "apparmorProfile", p.apparmor_profile);
  put(j, "oomScoreAdj", p.oom_score_adj);
  put_object(j, "scheduler", p.scheduler, write_scheduler);
  put(j, "selinuxLabel", p.selinux_label);
  put_object(j, "ioPriority", p.io_priority, write_io_priority);
  put_object(j, "execCPUAffinity", p.exec_cpu_affinity, write_cpu_affinity);
  return j;
}

// ---------------------------------------------------------------------------------------------
// hooks

Hook read_hook(const JsonNode& n) {
  JsonNode timeout = n.field("timeout");
  return {.path = absolute_path(n.require("path")),
          .args = n.get<Strings>("args"),
          .env = n.get<Strings>("env"),
          .timeout = timeout.absent() ? std::nullopt : std::optional(positive<int32_t>(timeout))};
}

json write_hook(const Hook& h) {
  json j{{"path", h.path}};
  put(j, "args", h.args);
  put(j, "env", h.env);
  put(j, "timeout", h.timeout);
  return j;
}

Hooks read_hooks(const JsonNode& n) {
  return {.prestart = n.list("prestart", read_hook),
          .create_runtime = n.list("createRuntime", read_hook),
          .create_container = n.list("createContainer", read_hook),
          .start_container = n.list("startContainer", read_hook),
          .poststart = n.list("poststart", read_hook),
          .poststop = n.list("poststop", read_hook)};
}

json write_hooks(const Hooks& h) {
  json j = json::object();
  put_list(j, "prestart", h.prestart, write_hook);
  put_list(j, "createRuntime", h.create_runtime, write_hook);
  put_list(j, "createContainer", h.create_container, write_hook);
  put_list(j, "startContainer", h.start_container, write_hook);
  put_list(j, "poststart", h.poststart, write_hook);
  put_list(j, "poststop", h.poststop, write_hook);
  return j;
}

// ---------------------------------------------------------------------------------------------
// linux.resources

DeviceCgroupRule read_device_rule(const JsonNode& n) {
  DeviceCgroupRule rule{.allow = n.req<bool>("allow"),
                        .type = opt_enum(n, "type", kCgroupDeviceType),
                        .major = n.opt<int64_t>("major"),
                        .minor = n.opt<int64_t>("minor"),
                        .access = n.opt<std::string>("access")};
  if (rule.access && rule.access->find_first_not_of("rwm") != std::string::npos)
    n.field("access").fail("must be a combination of r, w and m");
  return rule;
}

json write_device_rule(const DeviceCgroupRule& r) {
  json j{{"allow", r.allow}};
  put(j, "type", r.type);
  put(j, "major", r.major);
  put(j, "minor", r.minor);
  put(j, "access", r.access);
  return j;
}

MemoryResources read_memory(const JsonNode& n) {
  return {.limit = n.opt<int64_t>("limit"),
          .reservation = n.opt<int64_t>("reservation"),
          .swap = n.opt<int64_t>("swap"),
          .kernel = n.opt<int64_t>("kernel"),
          .kernel_tcp = n.opt<int64_t>("kernelTCP"),
          .swappiness = n.opt<uint64_t>("swappiness"),
          .disable_oom_killer = n.opt<bool>("disableOOMKiller"),
          .use_hierarchy = n.opt<bool>("useHierarchy"),
          .check_before_update = n.opt<bool>("checkBeforeUpdate")};
}

json write_memory(const MemoryResources& m) {
  json j = json::object();
  put(j, "limit", m.limit);
  put(j, "reservation", m.reservation);
  put(j, "swap", m.swap);
  put(j, "kernel", m.kernel);
  put(j, "kernelTCP", m.kernel_tcp);
  put(j, "swappiness", m.swappiness);
  put(j, "disableOOMKiller", m.disable_oom_killer);
  put(j, "useHierarchy", m.use_hierarchy);
  put(j, "checkBeforeUpdate", m.check_before_update);
  return j;
}

CpuResources read_cpu(const JsonNode& n) {
  return {.shares = n.opt<uint64_t>("shares"),
          .quota = n.opt<int64_t>("quota"),
          .burst = n.opt<uint64_t>("burst"),
          .period = n.opt<uint64_t>("period"),
          .realtime_runtime = n.opt<int64_t>("realtimeRuntime"),
          .realtime_period = n.opt<uint64_t>("realtimePeriod"),
          .cpus = n.opt<std::string>("cpus"),
          .mems = n.opt<std::string>("mems"),
          .idle = n.opt<int64_t>("idle")};
}

json write_cpu(const CpuResources& c) {
  json j = json::object();
  put(j, "shares", c.shares);
  put(j, "quota", c.quota);
  put(j, "burst", c.burst);
  put(j, "period", c.period);
  put(j, "realtimeRuntime", c.realtime_runtime);
  put(j, "realtimePeriod", c.realtime_period);
  put(j, "cpus", c.cpus);
  put(j, "mems", c.mems);
  put(j, "idle", c.idle);
  return j;
}

PidsResources read_pids(const JsonNode& n) { return {.limit = n.req<int64_t>("limit")}; }

json write_pids(const PidsResources& p) { return {{"limit", p.limit}}; }

WeightDevice read_weight_device(const JsonNode& n) {
  return {.major = n.req<int64_t>("major"),
          .minor = n.req<int64_t>("minor"),
          .weight = n.opt<uint16_t>("weight"),
          .leaf_weight = n.opt<uint16_t>("leafWeight")};
}

json write_weight_device(const WeightDevice& d) {
  json j{{"major", d.major}, {"minor", d.minor}};
  put(j, "weight", d.weight);
  put(j, "leafWeight", d.leaf_weight);
  return j;
}

ThrottleDevice read_throttle_device(const JsonNode& n) {
  return {.major = n.req<int64_t>("major"), .minor = n.req<int64_t>("minor"), .rate = n.req<uint64_t>("rate")};
}

json write_throttle_device(const ThrottleDevice& d) {
  return {{"major", d.major}, {"minor", d.minor}, {"rate", d.rate}};
}

BlockIoResources read_block_io(const JsonNode& n) {
  return {.weight = n.opt<uint16_t>("weight"),
          .leaf_weight = n.opt<uint16_t>("leafWeight"),
          .weight_device = n.list("weightDevice", read_weight_device),
          .throttle_read_bps_device = n.list("throttleReadBpsDevice", read_throttle_device),
          .throttle_write_bps_device = n.list("throttleWriteBpsDevice", read_throttle_device),
          .throttle_read_iops_device = n.list("throttleReadIOPSDevice", read_throttle_device),
          .throttle_write_iops_device = n.list("throttleWriteIOPSDevice", read_throttle_device)};
}

json write_block_io(const BlockIoResources& b) {
  json j = json::object();
  put(j, "weight", b.weight);
  put(j, "leafWeight", b.leaf_weight);
  put_list(j, "weightDevice", b.weight_device, write_weight_device);
  put_list(j, "throttleReadBpsDevice", b.throttle_read_bps_device, write_throttle_device);
  put_list(j, "throttleWriteBpsDevice", b.throttle_write_bps_device, write_throttle_device);
  put_list(j, "throttleReadIOPSDevice", b.throttle_read_iops_device, write_throttle_device);
  put_list(j, "throttleWriteIOPSDevice", b.throttle_write_iops_device, write_throttle_device);
  return j;
}

HugepageLimit read_hugepage_limit(const JsonNode& n) {
  return {.page_size = required_string(n, "pageSize"), .limit = n.req<uint64_t>("limit")};
}

json write_hugepage_limit(const HugepageLimit& h) { return {{"pageSize", h.page_size}, {"limit", h.limit}}; }

InterfacePriority read_interface_priority(const JsonNode& n) {
  return {.name = required_string(n, "name"), .priority = n.req<uint32_t>("priority")};
}

json write_interface_priority(const InterfacePriority& p) { return {{"name", p.name}, {"priority", p.priority}}; }

NetworkResources read_network(const JsonNode& n) {
  return {.class_id = n.opt<uint32_t>("classID"), .priorities = n.list("priorities", read_interface_priority)};
}

json write_network(const NetworkResources& net) {
  json j = json::object();
  put(j, "classID", net.class_id);
  put_list(j, "priorities", net.priorities, write_interface_priority);
  return j;
}

RdmaResources read_rdma(const JsonNode& n) {
  return {.hca_handles = n.opt<uint32_t>("hcaHandles"), .hca_objects = n.opt<uint32_t>("hcaObjects")};
}

json write_rdma(const RdmaResources& r) {
  json j = json::object();
  put(j, "hcaHandles", r.hca_handles);
  put(j, "hcaObjects", r.hca_objects);
  return j;
}

Resources read_resources(const JsonNode& n) {
  return {.devices = n.list("devices", read_device_rule),
          .memory = n.object("memory", read_memory),
          .cpu = n.object("cpu", read_cpu),
          .pids = n.object("pids", read_pids),
          .block_io = n.object("blockIO", read_block_io),
          .hugepage_limits = n.list("hugepageLimits", read_hugepage_limit),
          .network = n.object("network", read_network),
          .rdma = n.dict("rdma", read_rdma),
          .unified = n.get<StringMap>("unified")};
}

json write_resources(const Resources& r) {
  json j = json::object();
  put_list(j, "devices", r.devices, write_device_rule);
  put_object(j, "memory", r.memory, write_memory);
  put_object(j, "cpu", r.cpu, write_cpu);
  put_object(j, "pids", r.pids, write_pids);
  put_object(j, "blockIO", r.block_io, write_block_io);
  put_list(j, "hugepageLimits", r.hugepage_limits, write_hugepage_limit);
  put_object(j, "network", r.network, write_network);
  put_dict(j, "rdma", r.rdma, write_rdma);
  put(j, "unified", r.unified);
  return j;
}

// ---------------------------------------------------------------------------------------------
// linux.seccomp

SeccompArg read_seccomp_arg(const JsonNode& n) {
  return {.index = n.req<uint32_t>("index"),
          .value = n.req<uint64_t>("value"),
          .value_two = n.get<uint64_t>("valueTwo"),
          .op = enum_value(n.require("op"), kSeccompOp)};
}

json write_seccomp_arg(const SeccompArg& a) {
  json j{{"index", a.index}, {"value", a.value}, {"op", a.op}};
  if (a.value_two != 0) j["valueTwo"] = a.value_two;
  return j;
}

SeccompSyscall read_syscall(const JsonNode& n) {
  return {.names = non_empty_strings(n.field("names")),
          .action = enum_value(n.require("action"), kSeccompAction),
          .errno_ret = n.opt<uint32_t>("errnoRet"),
          .args = n.list("args", read_seccomp_arg)};
}

json write_syscall(const SeccompSyscall& s) {
  json j{{"names", s.names}, {"action", s.action}};
  put(j, "errnoRet", s.errno_ret);
  put_list(j, "args", s.args, write_seccomp_arg);
  return j;
}

Seccomp read_seccomp(const JsonNode& n) {
  return {.default_action = enum_value(n.require("defaultAction"), kSeccompAction),
          .default_errno_ret = n.opt<uint32_t>("defaultErrnoRet"),
          .architectures = n.get<Strings>("architectures"),
          .flags = n.get<Strings>("flags"),
          .listener_path = n.get<std::string>("listenerPath"),
          .listener_metadata = n.get<std::string>("listenerMetadata"),
          .syscalls = n.list("syscalls", read_syscall)};
}

json write_seccomp(const Seccomp& s) {
  json j{{"defaultAction", s.default_action}};
  put(j, "defaultErrnoRet", s.default_errno_ret);
  put(j, "architectures", s.architectures);
  put(j, "flags", s.flags);
  put(j, "listenerPath", s.listener_path);
  put(j, "listenerMetadata", s.listener_metadata);
  put_list(j, "syscalls", s.syscalls, write_syscall);
  return j;
}

// ---------------------------------------------------------------------------------------------
// the rest of linux

Namespace read_namespace(const JsonNode& n) {
  JsonNode type = n.require("type");
  std::optional<NamespaceType> parsed = namespace_type_from_name(type.as<std::string>());
  if (!parsed) type.fail("unknown namespace type " + json_quote(type.as<std::string>()));
  JsonNode path = n.field("path");
  // An empty path is Go's zero value: "create a new one", same as absent.
  bool joins = !path.absent() && !path.as<std::string>().empty();
  return {.type = *parsed, .path = joins ? absolute_path(path) : std::string()};
}

json write_namespace(const Namespace& ns) {
  json j{{"type", namespace_type_name(ns.type)}};
  put(j, "path", ns.path);
  return j;
}

std::vector<Namespace> read_namespaces(const JsonNode& parent) {
  std::vector<Namespace> namespaces = parent.list("namespaces", read_namespace);
  reject_duplicates(parent.field("namespaces"), namespaces,
                    [](const Namespace& ns) { return std::string(namespace_type_name(ns.type)); }, "namespace");
  return namespaces;
}

Device read_device(const JsonNode& n) {
  std::string type = enum_value(n.require("type"), kDeviceType);
  // Only FIFOs have no device numbers.
  auto number = [&](std::string_view key) { return type == "p" ? n.get<int64_t>(key) : n.req<int64_t>(key); };
  return {.type = type,
          .path = absolute_path(n.require("path")),
          .major = number("major"),
          .minor = number("minor"),
          .file_mode = n.opt<uint32_t>("fileMode"),
          .uid = n.opt<uint32_t>("uid"),
          .gid = n.opt<uint32_t>("gid")};
}

json write_device(const Device& d) {
  json j{{"type", d.type}, {"path", d.path}, {"major", d.major}, {"minor", d.minor}};
  put(j, "fileMode", d.file_mode);
  put(j, "uid", d.uid);
  put(j, "gid", d.gid);
  return j;
}

IntelRdt read_intel_rdt(const JsonNode& n) {
  return {.clos_id = n.get<std::string>("closID"),
          .l3_cache_schema = n.get<std::string>("l3CacheSchema"),
          .mem_bw_schema = n.get<std::string>("memBwSchema"),
          .enable_cmt = n.opt<bool>("enableCMT"),
          .enable_mbm = n.opt<bool>("enableMBM")};
}

json write_intel_rdt(const IntelRdt& r) {
  json j = json::object();
  put(j, "closID", r.clos_id);
  put(j, "l3CacheSchema", r.l3_cache_schema);
  put(j, "memBwSchema", r.mem_bw_schema);
  put(j, "enableCMT", r.enable_cmt);
  put(j, "enableMBM", r.enable_mbm);
  return j;
}

Personality read_personality(const JsonNode& n) {
  return {.domain = enum_value(n.require("domain"), kPersonalityDomain), .flags = n.get<Strings>("flags")};
}

json write_personality(const Personality& p) {
  json j{{"domain", p.domain}};
  put(j, "flags", p.flags);
  return j;
}

TimeOffset read_time_offset(const JsonNode& n) {
  return {.secs = n.get<int64_t>("secs"), .nanosecs = n.get<uint32_t>("nanosecs")};
}

json write_time_offset(const TimeOffset& t) { return {{"secs", t.secs}, {"nanosecs", t.nanosecs}}; }

std::map<std::string, TimeOffset> read_time_offsets(const JsonNode& parent) {
  std::map<std::string, TimeOffset> offsets;
  for (const auto& [clock, offset] : parent.field("timeOffsets").members()) {
    if (!kTimeClock.contains(clock)) offset.fail("unknown clock " + json_quote(clock));
    offsets.emplace(clock, read_time_offset(offset));
  }
  return offsets;
}

// Mappings only mean something for a user namespace the container creates or joins, and a new
// user namespace is unusable without them (runc refuses both).
void check_user_namespace(const JsonNode& n, const Linux& l) {
  const Namespace* userns = nullptr;
  for (const Namespace& ns : l.namespaces)
    if (ns.type == NamespaceType::user) userns = &ns;
  if (!userns) {
    if (!l.uid_mappings.empty()) n.field("uidMappings").fail("user namespace mappings specified but no user namespace");
    if (!l.gid_mappings.empty()) n.field("gidMappings").fail("user namespace mappings specified but no user namespace");
  } else if (userns->path.empty()) {
    if (l.uid_mappings.empty()) n.field("uidMappings").fail("required when creating a user namespace");
    if (l.gid_mappings.empty()) n.field("gidMappings").fail("required when creating a user namespace");
  }
}

Linux read_linux(const JsonNode& n) {
  Linux l{.uid_mappings = n.list("uidMappings", read_id_mapping),
          .gid_mappings = n.list("gidMappings", read_id_mapping),
          .sysctl = n.get<StringMap>("sysctl"),
          .resources = n.object("resources", read_resources),
          .cgroups_path = n.get<std::string>("cgroupsPath"),
          .namespaces = read_namespaces(n),
          .devices = n.list("devices", read_device),
          .seccomp = n.object("seccomp", read_seccomp),
          .rootfs_propagation = opt_enum(n, "rootfsPropagation", kPropagation).value_or(""),
          .masked_paths = n.get<Strings>("maskedPaths"),
          .readonly_paths = n.get<Strings>("readonlyPaths"),
          .mount_label = n.get<std::string>("mountLabel"),
          .intel_rdt = n.object("intelRdt", read_intel_rdt),
          .personality = n.object("personality", read_personality),
          .time_offsets = read_time_offsets(n)};
  check_user_namespace(n, l);
  return l;
}

json write_linux(const Linux& l) {
  json j = json::object();
  put_list(j, "uidMappings", l.uid_mappings, write_id_mapping);
  put_list(j, "gidMappings", l.gid_mappings, write_id_mapping);
  put(j, "sysctl", l.sysctl);
  put_object(j, "resources", l.resources, write_resources);
  put(j, "cgroupsPath", l.cgroups_path);
  put_list(j, "namespaces", l.namespaces, write_namespace);
  put_list(j, "devices", l.devices, write_device);
  put_object(j, "seccomp", l.seccomp, write_seccomp);
  put(j, "rootfsPropagation", l.rootfs_propagation);
  put(j, "maskedPaths", l.masked_paths);
  put(j, "readonlyPaths", l.readonly_paths);
  put(j, "mountLabel", l.mount_label);
  put_object(j, "intelRdt", l.intel_rdt, write_intel_rdt);
  put_object(j, "personality", l.personality, write_personality);
  put_dict(j, "timeOffsets", l.time_offsets, write_time_offset);
  return j;
}

// ---------------------------------------------------------------------------------------------
// top level

StringMap read_annotations(const JsonNode& parent) {
  JsonNode node = parent.field("annotations");
  StringMap annotations = node.absent() ? StringMap{} : node.as<StringMap>();
  if (annotations.contains("")) node.fail("keys must not be empty");
  return annotations;
}

Config read_config(const JsonNode& n) {
  return {.oci_version = required_string(n, "ociVersion"),
          .root = n.object("root", read_root),
          .mounts = n.list("mounts", read_mount),
          .process = n.object("process", read_process),
          .hostname = n.get<std::string>("hostname"),
          .domainname = n.get<std::string>("domainname"),
          .hooks = n.object("hooks", read_hooks),
          .annotations = read_annotations(n),
          .linux = n.object("linux", read_linux)};
}

json write_config(const Config& c) {
  json j{{"ociVersion", c.oci_version}};
  put_object(j, "root", c.root, write_root);
  put_list(j, "mounts", c.mounts, write_mount);
  put_object(j, "process", c.process, write_process);
  put(j, "hostname", c.hostname);
  put(j, "domainname", c.domainname);
  put_object(j, "hooks", c.hooks, write_hooks);
  put(j, "annotations", c.annotations);
  put_object(j, "linux", c.linux, write_linux);
  return j;
}

// Names the top-level value when it is not an object, where the path alone would be empty.
void expect_document_object(const json& document, const char* what) {
  if (!document.is_object()) throw SpecError("", std::string(what) + " must be a JSON object");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public API

const char* namespace_type_name(NamespaceType type) {
  for (size_t i = 0; i < std::size(kNamespaceTypes); ++i)
    if (kNamespaceTypes[i] == type) return kNamespaceNames[i].data();
  return "unknown";
}

std::optional<NamespaceType> namespace_type_from_name(const std::string& name) {
  for (size_t i = 0; i < std::size(kNamespaceNames); ++i)
    if (kNamespaceNames[i] == name) return kNamespaceTypes[i];
  return std::nullopt;
}

const Namespace* Config::find_namespace(NamespaceType type) const {
  if (!linux) return nullptr;
  auto it = std::ranges::find(linux->namespaces, type, &Namespace::type);
  return it == linux->namespaces.end() ? nullptr : &*it;
}

Config parse_config(const json& document) {
  expect_document_object(document, "config");
  return read_config(JsonNode(document, ""));
}

Config parse_config_text(const std::string& text) {
  json document;
  try {
    document = json::parse(text);
  } catch (const json::parse_error& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep the position and reason.
    std::string detail = e.what();
    if (size_t tag_end = detail.find("] "); detail.starts_with("[json.exception.") && tag_end != std::string::npos)
      detail.erase(0, tag_end + 2);
    throw SpecError("", "invalid JSON: " + detail);
  }
  return parse_config(document);
}

Config load_config(const std::filesystem::path& file) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rbe"), &std::fclose);
  if (!f) throw SpecError("", "open " + file.string() + ": " + std::strerror(errno));
  std::string text;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f.get())) > 0) text.append(buffer, n);
  if (std::ferror(f.get())) throw SpecError("", "read " + file.string() + ": " + std::strerror(errno));
  return parse_config_text(text);
}

Process parse_process(const json& document, const std::string& path) {
  return read_process(JsonNode(document, path));
}

Resources parse_resources(const json& document, const std::string& path) {
  return read_resources(JsonNode(document, path));
}

json to_json(const Config& config) { return write_config(config); }
json to_json(const Process& process) { return write_process(process); }
json to_json(const Resources& resources) { return write_resources(resources); }

// ---------------------------------------------------------------------------------------------
// default_config: runc 1.1's `runc spec` template (libcontainer/specconv/example.go) as it comes
// out on a cgroup v1/hybrid host, plus deltabox's own hostname and the snapshots annotation.

namespace {

Mount mount(std::string destination, std::string type, std::string source, Strings options) {
  return {.destination = std::move(destination),
          .type = std::move(type),
          .source = std::move(source),
          .options = std::move(options)};
}

Process default_process() {
  const Strings caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  return {.terminal = true,
          .args = {"sh"},
          .env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
          .cwd = "/",
          .capabilities = Capabilities{.bounding = caps, .effective = caps, .permitted = caps, .ambient = caps},
          .rlimits = {{.type = "RLIMIT_NOFILE", .hard = 1024, .soft = 1024}},
          .no_new_privileges = true};
}

std::vector<Mount> default_mounts() {
  return {mount("/proc", "proc", "proc", {}),
          mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
          mount("/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
          mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
          mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
          mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
          mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"})};
}

Linux default_linux() {
  return {.resources = Resources{.devices = {{.allow = false, .access = "rwm"}}},
          .namespaces = {{NamespaceType::pid},
                         {NamespaceType::network},
                         {NamespaceType::ipc},
                         {NamespaceType::uts},
                         {NamespaceType::mount}},
          .masked_paths = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                           "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                           "/proc/scsi"},
          .readonly_paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}};
}

// runc's ToRootless: no network namespace (no privileges to configure one), a user namespace
// mapping only the caller, /sys bound from the host (sysfs cannot be mounted without owning the
// network namespace), no uid=/gid= mount options (those ids are unmapped), and no cgroup limits.
void to_rootless(Config& c, uint32_t uid, uint32_t gid) {
  std::erase_if(c.linux->namespaces, [](const Namespace& ns) {
    return ns.type == NamespaceType::network || ns.type == NamespaceType::user;
  });
  c.linux->namespaces.push_back({NamespaceType::user});
  c.linux->uid_mappings = {{.container_id = 0, .host_id = uid, .size = 1}};
  c.linux->gid_mappings = {{.container_id = 0, .host_id = gid, .size = 1}};
  for (Mount& m : c.mounts) {
    if (m.destination == "/sys") {
      m = mount("/sys", "none", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro"});
      continue;
    }
    std::erase_if(m.options, [](const std::string& o) { return o.starts_with("uid=") || o.starts_with("gid="); });
  }
  c.linux->resources.reset();
}

}  // namespace

Config default_config(bool rootless, uint32_t uid, uint32_t gid) {
  Config c{.oci_version = kSpecVersion,
           .root = Root{.path = "rootfs", .readonly = true},
           .mounts = default_mounts(),
           .process = default_process(),
           .hostname = "deltabox",
           .annotations = {{kSnapshotsAnnotation, "true"}},
           .linux = default_linux()};
  if (rootless) to_rootless(c, uid, gid);
  return c;
}

}  // namespace oci
