#pragma once
// Linux capabilities by name, and the runc sequence that sets them just before execve:
//   apply_bounding_set(sets)          // while still root: needs CAP_SETPCAP
//   keep_caps_across_setuid(true)     // so permitted survives the uid change
//   change_user(uid, gid, gids, ...)
//   keep_caps_across_setuid(false)
//   apply_capability_sets(sets)       // effective/permitted/inheritable, then ambient
// apply_capabilities() runs the bounding + capability steps in one go when no uid change is needed.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <oci/config.hpp>

namespace deltabox {

// "CAP_CHOWN" -> 0. Names are matched exactly, as runc does.
std::optional<int> capability_from_name(std::string_view name);
// 0 -> "CAP_CHOWN"; nullptr for a number this build does not know.
const char* capability_name(int cap);
// The kernel's highest capability (/proc/sys/kernel/cap_last_cap), read once.
int last_cap();
// Every capability this build knows, in numeric order (for `features`).
std::vector<std::string> all_capability_names();

// A config's capability lists resolved to bit masks (bit n = capability n).
struct CapabilitySets {
  uint64_t bounding = 0;
  uint64_t effective = 0;
  uint64_t permitted = 0;
  uint64_t inheritable = 0;
  uint64_t ambient = 0;
  // Ambient capabilities in config order: runc raises them one by one.
  std::vector<int> ambient_list;
  // Names that are unknown, or beyond this kernel's last_cap(): runc ignores them with a warning.
  std::vector<std::string> unknown;
};
// Absent lists mean empty (runc drops everything when process.capabilities is missing).
CapabilitySets resolve_capabilities(const oci::Capabilities& caps);

// Drops every capability not in sets.bounding from the bounding set. Skipped when CAP_SETPCAP
// is not effective (as runc's capability library does): run it before giving up root.
void apply_bounding_set(const CapabilitySets& sets);

// Sets effective/permitted/inheritable (capset v3), then clears the ambient set and raises each
// ambient capability. Returns warnings for ambient capabilities the kernel refused to raise
// (runc only warns about those). Also retries the bounding-set drop first when possible.
std::vector<std::string> apply_capability_sets(const CapabilitySets& sets);

// resolve_capabilities + apply_capability_sets (which includes the bounding-set drop). Returns
// the unknown names for the caller to warn about; ambient capabilities the kernel refuses are
// logged as warnings here, as runc does.
std::vector<std::string> apply_capabilities(const oci::Capabilities& caps);

// PR_SET_KEEPCAPS: keep the permitted set across a setuid away from root.
void keep_caps_across_setuid(bool keep);

// setgroups (only when allowed: a user namespace with setgroups=deny refuses it), then setresgid,
// then setresuid, with raw syscalls acting on the calling thread only: the child may come from a
// raw clone(), where glibc's all-threads setxid broadcast cannot be trusted.
void change_user(uint32_t uid, uint32_t gid, const std::vector<uint32_t>& additional_gids,
                 bool setgroups_allowed);

}  // namespace deltabox
