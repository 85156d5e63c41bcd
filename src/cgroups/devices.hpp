#pragma once
// Device access rules for the devices controller, as runc models them: the config's
// linux.resources.devices followed by runc's built-in allow-list, fed in order through an emulator
// of the kernel's v1 devices cgroup. The emulator gives the minimal devices.allow/deny writes
// from the current state (v1) and the clean rule list the eBPF filter is built from (v2), so both
// versions enforce exactly the same policy.
#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace oci {
struct Resources;
}

namespace deltabox::cgroups {

constexpr int64_t kDeviceWildcard = -1;

// Access bits, in the kernel's and runc's canonical "rwm" order.
enum DeviceAccess : unsigned { kDeviceRead = 1, kDeviceWrite = 2, kDeviceMknod = 4 };
constexpr unsigned kDeviceAllAccess = kDeviceRead | kDeviceWrite | kDeviceMknod;

struct DeviceRule {
  char type = 'a';  // 'a' (every device), 'b' (block) or 'c' (char)
  int64_t major = kDeviceWildcard;
  int64_t minor = kDeviceWildcard;
  unsigned access = kDeviceAllAccess;
  bool allow = false;
  bool operator==(const DeviceRule&) const = default;
};

unsigned parse_device_access(std::string_view access);  // unknown letters are ignored, like runc
std::string device_access_string(unsigned access);      // canonical order: "rwm", "rw", "m"
// The devices.allow / devices.deny line: "c 1:3 rwm", "c 136:* rwm", "a *:* rwm".
std::string cgroup_string(const DeviceRule& rule);

// runc's specconv.AllowedDevices (runc 1.2.4+): mknod of any char/block device, /dev/null, random,
// full, tty, zero, urandom, /dev/pts/*, /dev/ptmx and /dev/net/tun.
const std::vector<DeviceRule>& default_device_rules();
// linux.resources.devices (type default "a", major/minor default wildcard, access required) with
// the default allow-list appended, as runc's specconv builds them.
std::vector<DeviceRule> device_rules(const oci::Resources& resources);

class DeviceEmulator {
 public:
  // A new emulator is a deny-all allow-list, the state runc builds targets from.
  DeviceEmulator() = default;
  static DeviceEmulator from_rules(const std::vector<DeviceRule>& rules);
  // The state a devices.list shows. A deny-list cgroup only ever shows "a *:* rwm" (its deny
  // exceptions are invisible), so it reads as allow-all.
  static DeviceEmulator from_list(std::string_view devices_list);

  void apply(const DeviceRule& rule);
  // Deny-list mode: everything allowed unless an exception denies it.
  bool deny_list() const { return default_allow_; }
  // The minimal rules to write (in order) to turn a cgroup in this state into `target`; starts
  // with a disruptive "a" rule only when the mode changes or this state is a deny-list.
  std::vector<DeviceRule> transition(const DeviceEmulator& target) const;
  // The rules turning a deny-all cgroup into this state: what the eBPF filter encodes.
  std::vector<DeviceRule> rules() const;

  bool operator==(const DeviceEmulator&) const = default;

 private:
  // Sorted like runc's orderedEntries: by major, minor, then type, wildcards (-1) first.
  struct Key {
    int64_t major;
    int64_t minor;
    char type;
    auto operator<=>(const Key&) const = default;
  };
  void add(const Key& key, unsigned access);
  void remove(const Key& key, unsigned access);

  bool default_allow_ = false;
  std::map<Key, unsigned> rules_;
};

}  // namespace deltabox::cgroups
