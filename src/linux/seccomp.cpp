#include "linux/seccomp.hpp"

#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>

#include "util/error.hpp"

namespace deltabox {
namespace {

constexpr uint32_t kSyscallMaxArguments = 6;

struct Named {
  const char* name;
  uint32_t value;
};

enum class Action : uint32_t {
  kill, kill_process, kill_thread, trap, errno_, trace, allow, log, notify,
};

constexpr std::array kActions = {
    Named{"SCMP_ACT_ALLOW", uint32_t(Action::allow)},
    Named{"SCMP_ACT_ERRNO", uint32_t(Action::errno_)},
    Named{"SCMP_ACT_KILL", uint32_t(Action::kill)},
    Named{"SCMP_ACT_KILL_PROCESS", uint32_t(Action::kill_process)},
    Named{"SCMP_ACT_KILL_THREAD", uint32_t(Action::kill_thread)},
    Named{"SCMP_ACT_LOG", uint32_t(Action::log)},
    Named{"SCMP_ACT_NOTIFY", uint32_t(Action::notify)},
    Named{"SCMP_ACT_TRACE", uint32_t(Action::trace)},
    Named{"SCMP_ACT_TRAP", uint32_t(Action::trap)},
};

constexpr std::array kOperators = {
    Named{"SCMP_CMP_EQ", SCMP_CMP_EQ},
    Named{"SCMP_CMP_GE", SCMP_CMP_GE},
    Named{"SCMP_CMP_GT", SCMP_CMP_GT},
    Named{"SCMP_CMP_LE", SCMP_CMP_LE},
    Named{"SCMP_CMP_LT", SCMP_CMP_LT},
    Named{"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    Named{"SCMP_CMP_NE", SCMP_CMP_NE},
};

// runc's names, with libseccomp's spelling for seccomp_arch_resolve_name().
struct ArchName {
  const char* name;
  const char* libseccomp_name;
};
constexpr std::array kArchs = {
    ArchName{"SCMP_ARCH_AARCH64", "aarch64"},
    ArchName{"SCMP_ARCH_ARM", "arm"},
    ArchName{"SCMP_ARCH_LOONGARCH64", "loongarch64"},
    ArchName{"SCMP_ARCH_MIPS", "mips"},
    ArchName{"SCMP_ARCH_MIPS64", "mips64"},
    ArchName{"SCMP_ARCH_MIPS64N32", "mips64n32"},
    ArchName{"SCMP_ARCH_MIPSEL", "mipsel"},
    ArchName{"SCMP_ARCH_MIPSEL64", "mipsel64"},
    ArchName{"SCMP_ARCH_MIPSEL64N32", "mipsel64n32"},
    ArchName{"SCMP_ARCH_PPC", "ppc"},
    ArchName{"SCMP_ARCH_PPC64", "ppc64"},
    ArchName{"SCMP_ARCH_PPC64LE", "ppc64le"},
    ArchName{"SCMP_ARCH_RISCV64", "riscv64"},
    ArchName{"SCMP_ARCH_S390", "s390"},
    ArchName{"SCMP_ARCH_S390X", "s390x"},
    ArchName{"SCMP_ARCH_X32", "x32"},
    ArchName{"SCMP_ARCH_X86", "x86"},
    ArchName{"SCMP_ARCH_X86_64", "x86_64"},
};

// runc accepts TSYNC but ignores it: the filter is loaded by a single-threaded process that is
// about to execve.
constexpr const char* kFlagTsync = "SECCOMP_FILTER_FLAG_TSYNC";
constexpr const char* kFlagSpecAllow = "SECCOMP_FILTER_FLAG_SPEC_ALLOW";
constexpr const char* kFlagLog = "SECCOMP_FILTER_FLAG_LOG";

template <typename Table>
std::optional<uint32_t> lookup(const Table& table, std::string_view name) {
  for (const auto& entry : table)
    if (name == entry.name) return entry.value;
  return std::nullopt;
}

template <typename Table>
std::vector<std::string> names_of(const Table& table) {
  std::vector<std::string> out;
  for (const auto& entry : table) out.emplace_back(entry.name);
  std::sort(out.begin(), out.end());
  return out;
}

// Resolves an action name to libseccomp's action value; errno_ret defaults to EPERM as in runc.
uint32_t resolve_action(const std::string& name, std::optional<uint32_t> errno_ret,
                        const std::string& path) {
  auto action = lookup(kActions, name);
  if (!action) fail("{}: unknown action \"{}\"", path, name);
  const uint32_t ret = errno_ret.value_or(EPERM);
  switch (static_cast<Action>(*action)) {
    case Action::kill:  // runc maps plain KILL to KILL_THREAD
    case Action::kill_thread: return SCMP_ACT_KILL_THREAD;
    case Action::kill_process: return SCMP_ACT_KILL_PROCESS;
    case Action::trap: return SCMP_ACT_TRAP;
    case Action::errno_: return SCMP_ACT_ERRNO(ret);
    case Action::trace: return SCMP_ACT_TRACE(ret);
    case Action::allow: return SCMP_ACT_ALLOW;
    case Action::log: return SCMP_ACT_LOG;
    case Action::notify: return SCMP_ACT_NOTIFY;
  }
  fail("{}: unknown action \"{}\"", path, name);
}

void add_architectures(scmp_filter_ctx ctx, const std::vector<std::string>& archs,
                       const std::string& path) {
  for (size_t i = 0; i < archs.size(); ++i) {
    const std::string where = fmt::format("{}.architectures[{}]", path, i);
    const ArchName* known = nullptr;
    for (const auto& a : kArchs)
      if (archs[i] == a.name) known = &a;
    if (!known) fail("{}: unknown architecture \"{}\"", where, archs[i]);
    const uint32_t token = seccomp_arch_resolve_name(known->libseccomp_name);
    if (token == 0) fail("{}: architecture {} is not supported by libseccomp {}", where, archs[i], libseccomp_version());
    int rc = seccomp_arch_add(ctx, token);
    // The native architecture is already in a new filter.
    if (rc < 0 && rc != -EEXIST) throw_errno(-rc, fmt::format("{}: add architecture {}", where, archs[i]));
  }
}

void set_attr(scmp_filter_ctx ctx, scmp_filter_attr attr, uint32_t value, std::string_view what) {
  int rc = seccomp_attr_set(ctx, attr, value);
  if (rc < 0) throw_errno(-rc, fmt::format("seccomp: set {}", what));
}

void set_flags(scmp_filter_ctx ctx, const std::vector<std::string>& flags, const std::string& path) {
  for (size_t i = 0; i < flags.size(); ++i) {
    const std::string where = fmt::format("{}.flags[{}]", path, i);
    if (flags[i] == kFlagTsync) continue;
    if (flags[i] == kFlagLog)
      set_attr(ctx, SCMP_FLTATR_CTL_LOG, 1, where + ": " + kFlagLog);
    else if (flags[i] == kFlagSpecAllow)
      set_attr(ctx, SCMP_FLTATR_CTL_SSB, 1, where + ": " + kFlagSpecAllow);
    else
      fail("{}: unknown seccomp flag \"{}\"", where, flags[i]);
  }
}

std::vector<scmp_arg_cmp> resolve_conditions(const std::vector<oci::SeccompArg>& args,
                                             const std::string& path) {
  std::vector<scmp_arg_cmp> conditions;
  for (size_t j = 0; j < args.size(); ++j) {
    const auto& arg = args[j];
    const std::string where = fmt::format("{}.args[{}]", path, j);
    if (arg.index >= kSyscallMaxArguments)
      fail("{}.index: {} is out of range (a syscall has at most {} arguments)", where, arg.index,
           kSyscallMaxArguments);
    auto op = lookup(kOperators, arg.op);
    if (!op) fail("{}.op: unknown operator \"{}\"", where, arg.op);
    conditions.push_back(scmp_arg_cmp{arg.index, static_cast<scmp_compare>(*op), arg.value, arg.value_two});
  }
  return conditions;
}

// Several conditions on the same argument cannot be ANDed by libseccomp; runc then falls back
// to one rule per condition (an OR), and so do we.
bool shares_an_argument(const std::vector<scmp_arg_cmp>& conditions) {
  std::array<int, kSyscallMaxArguments> count{};
  for (const auto& c : conditions)
    if (++count[c.arg] > 1) return true;
  return false;
}

void add_rule(scmp_filter_ctx ctx, uint32_t action, int syscall, const std::vector<scmp_arg_cmp>& conds,
              const std::string& name, const std::string& where) {
  int rc = seccomp_rule_add_array(ctx, action, syscall, static_cast<unsigned>(conds.size()), conds.data());
  if (rc < 0) throw_errno(-rc, fmt::format("{}: add seccomp rule for syscall {}", where, name));
}

void add_syscall_rules(SeccompProgram& program, const oci::SeccompSyscall& call, uint32_t default_action,
                       const std::string& where) {
  scmp_filter_ctx ctx = program.ctx.get();
  const uint32_t action = resolve_action(call.action, call.errno_ret, where + ".action");
  const auto conditions = resolve_conditions(call.args, where);
  for (size_t k = 0; k < call.names.size(); ++k) {
    const std::string& name = call.names[k];
    if (name.empty()) fail("{}.names[{}]: empty string is not a valid syscall", where, k);
    // The seccomp agent gets its fd over a write(): notifying on write would deadlock init.
    if (action == SCMP_ACT_NOTIFY && name == "write")
      fail("{}: SCMP_ACT_NOTIFY cannot be used for the write syscall", where);
    // libseccomp rejects a rule that repeats the default action; runc skips it silently.
    if (action == default_action) continue;
    const int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) {
      program.skipped_syscalls.push_back(name);
      continue;
    }
    if (shares_an_argument(conditions)) {
      for (const auto& c : conditions) add_rule(ctx, action, nr, {c}, name, where);
    } else {
      add_rule(ctx, action, nr, conditions, name, where);
    }
    // Only a rule that made it into the filter makes the kernel create a listener.
    if (action == SCMP_ACT_NOTIFY) program.uses_notify = true;
  }
}

size_t count_syscall_names(const oci::Seccomp& config) {
  size_t n = 0;
  for (const auto& call : config.syscalls) n += call.names.size();
  return n;
}

// seccomp_export_* only write to an fd: render into a memfd and read it back.
std::string export_to_string(scmp_filter_ctx ctx, int (*exporter)(const scmp_filter_ctx, int)) {
  UniqueFd fd(::memfd_create("seccomp-export", MFD_CLOEXEC));
  if (!fd) throw_errno("memfd_create");
  int rc = exporter(ctx, fd.get());
  if (rc < 0) throw_errno(-rc, "export seccomp filter");
  std::string out;
  char buf[4096];
  for (off_t offset = 0;;) {
    ssize_t n = ::pread(fd.get(), buf, sizeof buf, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read exported seccomp filter");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    offset += n;
  }
}

}  // namespace

void SeccompProgram::CtxDeleter::operator()(void* ctx) const { seccomp_release(ctx); }

SeccompProgram compile_seccomp(const oci::Seccomp& config, std::string_view path_view) {
  const std::string path(path_view);
  const uint32_t default_action =
      resolve_action(config.default_action, config.default_errno_ret, path + ".defaultAction");
  // Every syscall (including the agent handshake's write) would wait for the agent.
  if (default_action == SCMP_ACT_NOTIFY)
    fail("{}.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action", path);

  SeccompProgram program;
  program.ctx.reset(seccomp_init(default_action));
  if (!program.ctx) fail("{}: seccomp_init failed", path);
  scmp_filter_ctx ctx = program.ctx.get();

  add_architectures(ctx, config.architectures, path);
  set_flags(ctx, config.flags, path);
  set_attr(ctx, SCMP_FLTATR_CTL_NNP, 0, "no_new_privs attribute");
  // Real errno values from seccomp_load instead of libseccomp's generic -ECANCELED.
  seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
  // libseccomp <= 2.5.4 misbehaves with the binary tree on an empty filter; runc's threshold.
  if (count_syscall_names(config) > 32) seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

  for (size_t i = 0; i < config.syscalls.size(); ++i)
    add_syscall_rules(program, config.syscalls[i], default_action, fmt::format("{}.syscalls[{}]", path, i));

  if (program.uses_notify && seccomp_api_get() < 5)
    fail("{}: SCMP_ACT_NOTIFY needs libseccomp >= 2.5.0 and Linux >= 5.0 (API level {} < 5)", path,
         seccomp_api_get());
  return program;
}

UniqueFd load_with_listener(const SeccompProgram& program) {
  if (!program.ctx) fail("seccomp: no filter to load");
  int rc = seccomp_load(program.ctx.get());
  if (rc < 0) throw_errno(-rc, "load seccomp filter");
  if (!program.uses_notify) return UniqueFd();
  // libseccomp keeps the listener in global state and never closes it: it is ours.
  int fd = seccomp_notify_fd(program.ctx.get());
  if (fd < 0) throw_errno(-fd, "get seccomp notify fd");
  return UniqueFd(fd);
}

void load_seccomp(const SeccompProgram& program) { load_with_listener(program); }

std::string seccomp_pfc(const SeccompProgram& program) {
  if (!program.ctx) fail("seccomp: no filter to export");
  return export_to_string(program.ctx.get(), seccomp_export_pfc);
}

std::vector<std::string> seccomp_known_actions() { return names_of(kActions); }
std::vector<std::string> seccomp_known_operators() { return names_of(kOperators); }
std::vector<std::string> seccomp_known_archs() { return names_of(kArchs); }
std::vector<std::string> seccomp_known_flags() { return {kFlagTsync, kFlagSpecAllow, kFlagLog}; }

std::vector<std::string> seccomp_supported_flags() {
  // API levels (seccomp_api_get(3)): 3 adds the LOG attribute, 4 the SSB one. The level already
  // reflects what the running kernel supports.
  const unsigned api = seccomp_api_get();
  std::vector<std::string> flags{kFlagTsync};
  if (api >= 4) flags.emplace_back(kFlagSpecAllow);
  if (api >= 3) flags.emplace_back(kFlagLog);
  return flags;
}

std::string libseccomp_version() {
  const scmp_version* v = seccomp_version();
  return fmt::format("{}.{}.{}", v->major, v->minor, v->micro);
}

}  // namespace deltabox
