#include "linux/capabilities.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "util/error.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox {
namespace {

struct CapName {
  int value;
  const char* name;
};

// Spelled from the kernel header's constants so a typo cannot shift the numbering.
constexpr std::array kCapabilities = {
    CapName{CAP_CHOWN, "CAP_CHOWN"},
    CapName{CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"},
    CapName{CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"},
    CapName{CAP_FOWNER, "CAP_FOWNER"},
    CapName{CAP_FSETID, "CAP_FSETID"},
    CapName{CAP_KILL, "CAP_KILL"},
    CapName{CAP_SETGID, "CAP_SETGID"},
    CapName{CAP_SETUID, "CAP_SETUID"},
    CapName{CAP_SETPCAP, "CAP_SETPCAP"},
    CapName{CAP_LINUX_IMMUTABLE, "CAP_LINUX_IMMUTABLE"},
    CapName{CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE"},
    CapName{CAP_NET_BROADCAST, "CAP_NET_BROADCAST"},
    CapName{CAP_NET_ADMIN, "CAP_NET_ADMIN"},
    CapName{CAP_NET_RAW, "CAP_NET_RAW"},
    CapName{CAP_IPC_LOCK, "CAP_IPC_LOCK"},
    CapName{CAP_IPC_OWNER, "CAP_IPC_OWNER"},
    CapName{CAP_SYS_MODULE, "CAP_SYS_MODULE"},
    CapName{CAP_SYS_RAWIO, "CAP_SYS_RAWIO"},
    CapName{CAP_SYS_CHROOT, "CAP_SYS_CHROOT"},
    CapName{CAP_SYS_PTRACE, "CAP_SYS_PTRACE"},
    CapName{CAP_SYS_PACCT, "CAP_SYS_PACCT"},
    CapName{CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
    CapName{CAP_SYS_BOOT, "CAP_SYS_BOOT"},
    CapName{CAP_SYS_NICE, "CAP_SYS_NICE"},
    CapName{CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"},
    CapName{CAP_SYS_TIME, "CAP_SYS_TIME"},
    CapName{CAP_SYS_TTY_CONFIG, "CAP_SYS_TTY_CONFIG"},
    CapName{CAP_MKNOD, "CAP_MKNOD"},
    CapName{CAP_LEASE, "CAP_LEASE"},
    CapName{CAP_AUDIT_WRITE, "CAP_AUDIT_WRITE"},
    CapName{CAP_AUDIT_CONTROL, "CAP_AUDIT_CONTROL"},
    CapName{CAP_SETFCAP, "CAP_SETFCAP"},
    CapName{CAP_MAC_OVERRIDE, "CAP_MAC_OVERRIDE"},
    CapName{CAP_MAC_ADMIN, "CAP_MAC_ADMIN"},
    CapName{CAP_SYSLOG, "CAP_SYSLOG"},
    CapName{CAP_WAKE_ALARM, "CAP_WAKE_ALARM"},
    CapName{CAP_BLOCK_SUSPEND, "CAP_BLOCK_SUSPEND"},
    CapName{CAP_AUDIT_READ, "CAP_AUDIT_READ"},
    CapName{CAP_PERFMON, "CAP_PERFMON"},
    CapName{CAP_BPF, "CAP_BPF"},
    CapName{CAP_CHECKPOINT_RESTORE, "CAP_CHECKPOINT_RESTORE"},
};
static_assert(kCapabilities.size() == CAP_LAST_CAP + 1);

constexpr bool table_is_in_order() {
  for (size_t i = 0; i < kCapabilities.size(); ++i)
    if (kCapabilities[i].value != static_cast<int>(i)) return false;
  return true;
}
static_assert(table_is_in_order(), "capability_name() indexes the table by number");

int read_last_cap() {
  try {
    return std::stoi(read_file("/proc/sys/kernel/cap_last_cap"));
  } catch (const std::exception&) {
    // Without /proc (very early init) trust the headers we were built with.
    return CAP_LAST_CAP;
  }
}

uint64_t bit(int cap) { return uint64_t{1} << cap; }

uint64_t resolve_list(const std::optional<std::vector<std::string>>& names, CapabilitySets& sets,
                      std::vector<int>* in_order = nullptr) {
  uint64_t mask = 0;
  if (!names) return mask;
  for (const auto& name : *names) {
    auto cap = capability_from_name(name);
    if (!cap || *cap > last_cap()) {
      bool seen = false;
      for (const auto& u : sets.unknown) seen = seen || u == name;
      if (!seen) sets.unknown.push_back(name);
      continue;
    }
    mask |= bit(*cap);
    if (in_order) in_order->push_back(*cap);
  }
  return mask;
}

struct CapState {
  uint64_t effective = 0;
  uint64_t permitted = 0;
  uint64_t inheritable = 0;
};

CapState cap_get() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  check(static_cast<int>(::syscall(SYS_capget, &header, data)), "capget");
  auto join = [](uint32_t lo, uint32_t hi) { return uint64_t{lo} | (uint64_t{hi} << 32); };
  return {join(data[0].effective, data[1].effective), join(data[0].permitted, data[1].permitted),
          join(data[0].inheritable, data[1].inheritable)};
}

void cap_set(const CapState& state) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(state.effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(state.permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(state.inheritable >> (32 * i));
  }
  check(static_cast<int>(::syscall(SYS_capset, &header, data)),
        "capset effective={:#x} permitted={:#x} inheritable={:#x}", state.effective,
        state.permitted, state.inheritable);
}

}  // namespace

std::optional<int> capability_from_name(std::string_view name) {
  for (const auto& c : kCapabilities)
    if (name == c.name) return c.value;
  return std::nullopt;
}

const char* capability_name(int cap) {
  if (cap < 0 || cap >= static_cast<int>(kCapabilities.size())) return nullptr;
  return kCapabilities[static_cast<size_t>(cap)].name;
}

int last_cap() {
  static const int value = read_last_cap();
  return value;
}

std::vector<std::string> all_capability_names() {
  std::vector<std::string> names;
  for (const auto& c : kCapabilities) names.emplace_back(c.name);
  return names;
}

CapabilitySets resolve_capabilities(const oci::Capabilities& caps) {
  CapabilitySets sets;
  sets.bounding = resolve_list(caps.bounding, sets);
  sets.effective = resolve_list(caps.effective, sets);
  sets.permitted = resolve_list(caps.permitted, sets);
  sets.inheritable = resolve_list(caps.inheritable, sets);
  sets.ambient = resolve_list(caps.ambient, sets, &sets.ambient_list);
  return sets;
}

void apply_bounding_set(const CapabilitySets& sets) {
  if (!(cap_get().effective & bit(CAP_SETPCAP))) return;
  for (int cap = 0; cap <= last_cap(); ++cap) {
    if (sets.bounding & bit(cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      // EINVAL: the kernel does not know this capability, so it cannot be in the set anyway.
      if (errno == EINVAL) continue;
      throw_errno(fmt::format("drop {} from the bounding set", capability_name(cap)));
    }
  }
}

std::vector<std::string> apply_capability_sets(const CapabilitySets& sets) {
  // After a setuid away from root with keepcaps, permitted survives but effective is cleared.
  // Raising effective to permitted (always allowed) brings CAP_SETPCAP back for the bounding
  // drop and lets capset lift inheritable capabilities beyond the old inheritable set.
  CapState now = cap_get();
  if (now.effective != now.permitted) {
    now.effective = now.permitted;
    cap_set(now);
  }
  apply_bounding_set(sets);
  cap_set({sets.effective, sets.permitted, sets.inheritable});

  std::vector<std::string> warnings;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    throw_errno("clear the ambient capability set");
  for (int cap : sets.ambient_list) {
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      warnings.push_back(fmt::format("can't raise ambient capability {}: {}", capability_name(cap),
                                     std::strerror(errno)));
  }
  return warnings;
}

std::vector<std::string> apply_capabilities(const oci::Capabilities& caps) {
  CapabilitySets sets = resolve_capabilities(caps);
  // runc 1.1's own `spec` template lists ambient caps without inheritable ones, so the kernel
  // refuses them for nearly every container: like runc 1.1, say so only at debug level.
  for (const auto& warning : apply_capability_sets(sets)) log::debug(warning);
  return std::move(sets.unknown);
}

void keep_caps_across_setuid(bool keep) {
  check(::prctl(PR_SET_KEEPCAPS, keep ? 1 : 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS, {})", keep);
}

void change_user(uint32_t uid, uint32_t gid, const std::vector<uint32_t>& additional_gids,
                 bool setgroups_allowed) {
  // Groups first and uid last: once the uid changes we may lose the right to change the rest.
  if (setgroups_allowed) {
    std::vector<gid_t> groups(additional_gids.begin(), additional_gids.end());
    check(static_cast<int>(::syscall(SYS_setgroups, groups.size(), groups.data())),
          "setgroups({} groups)", groups.size());
  }
  check(static_cast<int>(::syscall(SYS_setresgid, gid, gid, gid)), "setresgid({})", gid);
  check(static_cast<int>(::syscall(SYS_setresuid, uid, uid, uid)), "setresuid({})", uid);
}

}  // namespace deltabox
