#include "linux/scheduler.hpp"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

struct Named {
  std::string_view name;
  uint64_t value;
};

constexpr Named kPolicies[] = {{"SCHED_OTHER", 0}, {"SCHED_FIFO", 1}, {"SCHED_RR", 2},      {"SCHED_BATCH", 3},
                               {"SCHED_ISO", 4},   {"SCHED_IDLE", 5}, {"SCHED_DEADLINE", 6}};

constexpr Named kFlags[] = {{"SCHED_FLAG_RESET_ON_FORK", 0x01},  {"SCHED_FLAG_RECLAIM", 0x02},
                            {"SCHED_FLAG_DL_OVERRUN", 0x04},     {"SCHED_FLAG_KEEP_POLICY", 0x08},
                            {"SCHED_FLAG_KEEP_PARAMS", 0x10},    {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
                            {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40}};

template <size_t N>
const Named* lookup(const Named (&table)[N], std::string_view name) {
  for (const Named& n : table)
    if (n.name == name) return &n;
  return nullptr;
}

constexpr int kIoprioClassShift = 13;
constexpr int kIoprioWhoProcess = 1;

// Bytes of a CPU mask holding CPUs 0..max_cpu, rounded up to whole unsigned longs as the kernel
// expects.
size_t mask_bytes(unsigned max_cpu) {
  size_t bits_per_word = 8 * sizeof(unsigned long);
  return ((max_cpu + 1 + bits_per_word - 1) / bits_per_word) * sizeof(unsigned long);
}

void set_affinity(pid_t pid, const std::vector<unsigned long>& mask) {
  if (::sched_setaffinity(pid, mask.size() * sizeof(unsigned long), reinterpret_cast<const cpu_set_t*>(mask.data())) <
      0)
    throw Error("sched_setaffinity", errno);
}

std::vector<unsigned long> mask_of(const std::vector<unsigned>& cpus) {
  std::vector<unsigned long> mask(mask_bytes(cpus.empty() ? 0 : cpus.back()) / sizeof(unsigned long), 0);
  constexpr unsigned bits = 8 * sizeof(unsigned long);
  for (unsigned cpu : cpus) mask[cpu / bits] |= 1UL << (cpu % bits);
  return mask;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A CPU number: decimal digits only.
bool parse_cpu(std::string_view s, unsigned& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

// ---- scheduler -------------------------------------------------------------------------------

uint32_t sched_policy_value(std::string_view policy) {
  const Named* n = lookup(kPolicies, policy);
  if (!n) fail("invalid scheduler policy: {}", policy);
  return static_cast<uint32_t>(n->value);
}

uint64_t sched_flag_value(std::string_view flag) {
  const Named* n = lookup(kFlags, flag);
  if (!n) fail("invalid scheduler flag: {}", flag);
  return n->value;
}

void validate_scheduler(const oci::Scheduler& s) {
  if (s.policy.empty()) fail("scheduler policy is required");
  sched_policy_value(s.policy);
  if (s.policy == "SCHED_ISO") fail("invalid scheduler policy: SCHED_ISO (not implemented by Linux)");
  for (const std::string& flag : s.flags) sched_flag_value(flag);
  int32_t nice = s.nice.value_or(0);
  if ((s.policy == "SCHED_OTHER" || s.policy == "SCHED_BATCH") && (nice < -20 || nice > 19))
    fail("invalid scheduler.nice: {} when scheduler.policy is {}", nice, s.policy);
  if (s.priority.value_or(0) != 0 && s.policy != "SCHED_FIFO" && s.policy != "SCHED_RR")
    fail("scheduler.priority can only be specified for SchedFIFO or SchedRR policy");
  if (s.policy != "SCHED_DEADLINE" &&
      (s.runtime.value_or(0) != 0 || s.deadline.value_or(0) != 0 || s.period.value_or(0) != 0))
    fail("scheduler runtime/deadline/period can only be specified for SchedDeadline policy");
}

SchedAttr to_sched_attr(const oci::Scheduler& s) {
  validate_scheduler(s);
  SchedAttr attr;
  attr.policy = sched_policy_value(s.policy);
  for (const std::string& flag : s.flags) attr.flags |= sched_flag_value(flag);
  attr.nice = s.nice.value_or(0);
  attr.priority = static_cast<uint32_t>(s.priority.value_or(0));
  attr.runtime = s.runtime.value_or(0);
  attr.deadline = s.deadline.value_or(0);
  attr.period = s.period.value_or(0);
  return attr;
}

void apply_scheduler(const oci::Scheduler& scheduler, bool cpuset_cpus_configured) {
  SchedAttr attr = to_sched_attr(scheduler);
  if (::syscall(SYS_sched_setattr, 0, &attr, 0) < 0) {
    int err = errno;
    if (err == EPERM && cpuset_cpus_configured)
      throw Error("process scheduler can't be used together with AllowedCPUs", 0);
    throw_errno(err, "error setting scheduler");
  }
}

SchedAttr get_sched_attr(pid_t pid) {
  SchedAttr attr;
  if (::syscall(SYS_sched_getattr, pid, &attr, sizeof attr, 0) < 0) throw_errno(fmt::format("sched_getattr {}", pid));
  return attr;
}

// ---- I/O priority ------------------------------------------------------------------------

namespace {
int io_class_value(const std::string& io_class) {
  if (io_class == "IOPRIO_CLASS_RT") return 1;
  if (io_class == "IOPRIO_CLASS_BE") return 2;
  if (io_class == "IOPRIO_CLASS_IDLE") return 3;
  fail("invalid io priority class: {}", io_class);
}
}  // namespace

void validate_io_priority(const oci::IoPriority& io) {
  io_class_value(io.io_class);
  if (io.priority < 0 || io.priority > 7) fail("invalid ioPriority.Priority: {}", io.priority);
}

int io_priority_value(const oci::IoPriority& io) {
  validate_io_priority(io);
  return (io_class_value(io.io_class) << kIoprioClassShift) | io.priority;
}

void apply_io_priority(const oci::IoPriority& io) {
  int value = io_priority_value(io);
  if (::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, value) < 0) throw_errno("failed to set io priority");
}

int get_io_priority(pid_t pid) {
  long value = ::syscall(SYS_ioprio_get, kIoprioWhoProcess, pid);
  if (value < 0) throw_errno(fmt::format("ioprio_get {}", pid));
  return static_cast<int>(value);
}

// ---- CPU affinity ------------------------------------------------------------------------

std::vector<unsigned> parse_cpu_list(std::string_view list) {
  std::vector<unsigned> cpus;
  if (list.empty()) return cpus;
  auto bad = [&](std::string_view why) { fail("invalid CPU list \"{}\": {}", list, why); };
  std::string_view rest = list;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view element = trim_blanks(rest.substr(0, comma));
    if (!element.empty()) {
      unsigned first = 0;
      unsigned last = 0;
      size_t dash = element.find('-');
      if (dash == std::string_view::npos) {
        if (!parse_cpu(element, first)) bad(fmt::format("invalid CPU \"{}\"", element));
        last = first;
      } else {
        if (!parse_cpu(element.substr(0, dash), first) || !parse_cpu(element.substr(dash + 1), last))
          bad(fmt::format("invalid range \"{}\"", element));
        if (first > last) bad(fmt::format("invalid range \"{}\" (start > end)", element));
      }
      if (last > kMaxCpu) bad(fmt::format("CPU {} is above the maximum of {}", last, kMaxCpu));
      for (unsigned cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (cpus.empty()) bad("no CPUs");
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

void validate_cpu_affinity(const oci::CpuAffinity& affinity) {
  auto check = [](const std::string& list, std::string_view field) {
    try {
      parse_cpu_list(list);
    } catch (const Error& e) {
      fail("process.execCPUAffinity.{}: {}", field, e.what());
    }
  };
  check(affinity.initial, "initial");
  check(affinity.final_, "final");
}

void apply_cpu_affinity(const std::string& cpu_list, pid_t pid) {
  std::vector<unsigned> cpus = parse_cpu_list(cpu_list);
  if (cpus.empty()) return;
  try {
    set_affinity(pid, mask_of(cpus));
  } catch (const Error& e) {
    throw Error(fmt::format("set CPU affinity to {}", cpu_list), e.code());
  }
}

void apply_initial_cpu_affinity(const oci::CpuAffinity& affinity) {
  try {
    apply_cpu_affinity(affinity.initial, 0);
  } catch (const Error& e) {
    throw Error(fmt::format("error setting initial CPU affinity: {}", e.what()), 0);
  }
}

void apply_final_cpu_affinity(const oci::CpuAffinity* affinity, pid_t pid) {
  if (affinity == nullptr || affinity->final_.empty()) {
    reset_cpu_affinity(pid);
    return;
  }
  try {
    apply_cpu_affinity(affinity->final_, pid);
  } catch (const Error& e) {
    throw Error(fmt::format("error setting final CPU affinity: {}", e.what()), 0);
  }
}

void reset_cpu_affinity(pid_t pid) {
  std::vector<unsigned long> mask(mask_bytes(kMaxCpu) / sizeof(unsigned long), ~0UL);
  try {
    set_affinity(pid, mask);
  } catch (const Error& e) {
    log::debug("failed to reset the CPU affinity of pid {}: {}", pid, e.what());
  }
}

std::vector<unsigned> get_cpu_affinity(pid_t pid) {
  // The kernel wants a buffer of at least its own cpumask size; grow until it fits.
  for (size_t words = 16;; words *= 2) {
    std::vector<unsigned long> mask(words, 0);
    if (::sched_getaffinity(pid, words * sizeof(unsigned long), reinterpret_cast<cpu_set_t*>(mask.data())) == 0) {
      std::vector<unsigned> cpus;
      constexpr unsigned bits = 8 * sizeof(unsigned long);
      for (size_t w = 0; w < mask.size(); ++w)
        for (unsigned b = 0; b < bits; ++b)
          if (mask[w] & (1UL << b)) cpus.push_back(static_cast<unsigned>(w * bits + b));
      return cpus;
    }
    if (errno != EINVAL || words > (mask_bytes(kMaxCpu) / sizeof(unsigned long)))
      throw_errno(fmt::format("sched_getaffinity {}", pid));
  }
}

}  // namespace deltabox
