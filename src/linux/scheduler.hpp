#pragma once
// process.scheduler (sched_setattr(2)), process.ioPriority (ioprio_set(2)) and
// process.execCPUAffinity (sched_setaffinity(2)), with runc's mapping, validation and messages.
//
// Where runc applies them (runc 1.2/1.3, libcontainer):
//   * scheduler and ioPriority: in the container process itself (init and exec alike), after
//     PR_SET_NO_NEW_PRIVS and before telling the parent "ready" — so before the parent's
//     procReady work (rlimits via prlimit), before seccomp, before the user switch and the
//     capability drop (standard_init_linux.go / setns_init_linux.go: setupScheduler, then
//     setupIOPriority). Doing it while still privileged matters: SCHED_FIFO/RR/DEADLINE,
//     negative nice and IOPRIO_CLASS_RT need CAP_SYS_NICE / CAP_SYS_ADMIN. (runc 1.2 set the
//     ioPriority of an exec'd process in the parent before spawning it, so it was inherited;
//     1.3 moved it into the init code; the outcome is the same.)
//   * execCPUAffinity, only for `exec` (the name says so): see apply_initial_cpu_affinity and
//     apply_final_cpu_affinity below for the two steps and their order.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <oci/config.hpp>

namespace deltabox {

// ---- scheduler -------------------------------------------------------------------------------

// The kernel's struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes), as golang.org/x/sys/unix
// SchedAttr that runc passes.
struct SchedAttr {
  uint32_t size = sizeof(SchedAttr);
  uint32_t policy = 0;
  uint64_t flags = 0;
  int32_t nice = 0;
  uint32_t priority = 0;
  uint64_t runtime = 0;
  uint64_t deadline = 0;
  uint64_t period = 0;
  uint32_t util_min = 0;
  uint32_t util_max = 0;
};
static_assert(sizeof(SchedAttr) == 56);

// The values of the spec's policy names: SCHED_OTHER 0, FIFO 1, RR 2, BATCH 3, ISO 4, IDLE 5,
// DEADLINE 6; throws Error("invalid scheduler policy: X").
uint32_t sched_policy_value(std::string_view policy);
// SCHED_FLAG_RESET_ON_FORK 0x01, RECLAIM 0x02, DL_OVERRUN 0x04, KEEP_POLICY 0x08,
// KEEP_PARAMS 0x10, UTIL_CLAMP_MIN 0x20, UTIL_CLAMP_MAX 0x40; else Error("invalid scheduler flag: X").
uint64_t sched_flag_value(std::string_view flag);

// Pure: runc's validate.scheduler plus the checks of configs.ToSchedAttr, with runc's texts:
//   scheduler policy is required
//   invalid scheduler policy: X          (SCHED_ISO too: runc maps it to 4, which mainline
//                                         Linux has never implemented — EINVAL at init; we
//                                         refuse it up front)
//   invalid scheduler flag: X
//   invalid scheduler.nice: N when scheduler.policy is SCHED_OTHER   (OTHER and BATCH only)
//   scheduler.priority can only be specified for SchedFIFO or SchedRR policy
//   scheduler runtime/deadline/period can only be specified for SchedDeadline policy
// Range checks the kernel does itself (e.g. a FIFO priority of 0, or DEADLINE's
// runtime <= deadline <= period) are left to sched_setattr, as runc does.
void validate_scheduler(const oci::Scheduler& scheduler);

// Pure: validates, then maps like runc's configs.ToSchedAttr (absent nice/priority/... are 0).
SchedAttr to_sched_attr(const oci::Scheduler& scheduler);

// sched_setattr(0, attr, 0) on the calling thread (the container process is single-threaded
// when this runs). Errors: "error setting scheduler: <errno>", or, for EPERM while the
// container's cgroup pins CPUs (linux.resources.cpu.cpus set, pass cpuset_cpus_configured),
// runc's "process scheduler can't be used together with AllowedCPUs".
void apply_scheduler(const oci::Scheduler& scheduler, bool cpuset_cpus_configured = false);

// sched_getattr(pid, ...): for tests and diagnostics.
SchedAttr get_sched_attr(pid_t pid = 0);

// ---- I/O priority ------------------------------------------------------------------------

// Pure. runc's texts: "invalid io priority class: X", "invalid ioPriority.Priority: N" (0..7).
void validate_io_priority(const oci::IoPriority& io_priority);
// Pure: (class << 13) | priority with IOPRIO_CLASS_RT 1, BE 2, IDLE 3.
int io_priority_value(const oci::IoPriority& io_priority);
// ioprio_set(IOPRIO_WHO_PROCESS, 0, value) on the calling thread; inherited by children.
// Error: "failed to set io priority: <errno>".
void apply_io_priority(const oci::IoPriority& io_priority);
// ioprio_get(IOPRIO_WHO_PROCESS, pid): the raw value (class << 13 | data).
int get_io_priority(pid_t pid = 0);

// ---- CPU affinity ------------------------------------------------------------------------

// The largest CPU number a list may name (runc's configs.MaxCPU).
inline constexpr unsigned kMaxCpu = 65536;

// Pure: parses a Linux CPU list such as "0-3,7" like runc's configs.ToCPUSet. Returns the CPUs
// sorted and deduplicated; "" gives an empty vector (unset). Blanks around an element and empty
// elements are ignored (" 1, 3 ,5-7,"), blanks inside a range are not ("1 - 2"); a list with
// no CPU at all (",", " "), a reversed range ("5-3") or a CPU above kMaxCpu is an error:
//   invalid CPU list "X": <why>
std::vector<unsigned> parse_cpu_list(std::string_view list);

// Pure: both lists of process.execCPUAffinity parse ("process.execCPUAffinity.initial: ...").
void validate_cpu_affinity(const oci::CpuAffinity& affinity);

// sched_setaffinity(pid, cpus of list); pid 0 is the calling thread. An empty list does
// nothing. Errors: "set CPU affinity to X: <errno>" (EINVAL when none of the CPUs is usable).
void apply_cpu_affinity(const std::string& cpu_list, pid_t pid = 0);

// The exec CPU affinity, in runc's order (runc 1.3: libcontainer/nsexec.c, process_linux.go
// setnsProcess.start, runtime-spec config.md "execCPUAffinity"):
//   1. apply_initial_cpu_affinity: in the process that will become the exec'd process, FIRST,
//      before it joins the container's cgroup (runc does it at the top of nsexec, before the
//      setns dance). It keeps the runtime's own work on `initial` while it is still outside
//      the container's cpuset.
//   2. the parent moves the process into the container's cgroup(s);
//   3. apply_final_cpu_affinity: from the PARENT, on the child's pid, right after the cgroup
//      move and before letting the child continue to execve. With `final` set, the process gets
//      exactly those CPUs; without it, the affinity is reset to "all CPUs" (runc's
//      tryResetCPUAffinity), which the kernel clamps to the cgroup's cpuset — otherwise the
//      process would keep the runtime's (or `initial`'s) affinity.
// For the container's init (create/run) runc only does the reset of step 3, on the init pid
// right after placing it in the cgroup (initProcess.start).
void apply_initial_cpu_affinity(const oci::CpuAffinity& affinity);
void apply_final_cpu_affinity(const oci::CpuAffinity* affinity, pid_t pid);

// runc's tryResetCPUAffinity: best effort (failures are logged at debug level) affinity to
// every possible CPU, which the kernel intersects with the cgroup's cpuset.
void reset_cpu_affinity(pid_t pid);

// sched_getaffinity(pid): the CPUs, sorted.
std::vector<unsigned> get_cpu_affinity(pid_t pid = 0);

}  // namespace deltabox
