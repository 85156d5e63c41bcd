#include "cgroups/devices.hpp"

#include <charconv>

#include <oci/config.hpp>

#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox::cgroups {
namespace {

DeviceRule allow(char type, int64_t major, int64_t minor, unsigned access) {
  return {.type = type, .major = major, .minor = minor, .access = access, .allow = true};
}

std::string number_or_star(int64_t n) { return n == kDeviceWildcard ? "*" : std::to_string(n); }

int64_t parse_device_number(std::string_view text) {
  if (text == "*") return kDeviceWildcard;
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) fail("invalid device number {}", log::go_quote(text));
  return value;
}

// One devices.list line, "c 1:3 rwm"; nullopt for "a *:* rwm" (the deny-list marker).
std::optional<DeviceRule> parse_list_line(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find_first_of(" :", pos);
    if (end == std::string_view::npos) end = line.size();
    if (end > pos) fields.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  if (fields.size() != 4) fail("malformed devices.list rule {}", line);
  if (fields[0] == "a") return std::nullopt;
  if (fields[0] != "b" && fields[0] != "c") fail("unknown device type {}", log::go_quote(fields[0]));
  DeviceRule rule{.type = fields[0][0],
                  .major = parse_device_number(fields[1]),
                  .minor = parse_device_number(fields[2]),
                  .access = parse_device_access(fields[3]),
                  .allow = true};
  if (rule.access == 0 || device_access_string(rule.access) != fields[3])
    fail("parse access mode: contained unknown modes or is empty: {}", log::go_quote(fields[3]));
  return rule;
}

}  // namespace

unsigned parse_device_access(std::string_view access) {
  unsigned bits = 0;
  for (char c : access) {
    if (c == 'r') bits |= kDeviceRead;
    if (c == 'w') bits |= kDeviceWrite;
    if (c == 'm') bits |= kDeviceMknod;
  }
  return bits;
}

std::string device_access_string(unsigned access) {
  std::string out;
  if (access & kDeviceRead) out += 'r';
  if (access & kDeviceWrite) out += 'w';
  if (access & kDeviceMknod) out += 'm';
  return out;
}

std::string cgroup_string(const DeviceRule& rule) {
  return fmt::format("{} {}:{} {}", rule.type, number_or_star(rule.major), number_or_star(rule.minor),
                     device_access_string(rule.access));
}

const std::vector<DeviceRule>& default_device_rules() {
  static const std::vector<DeviceRule> rules = {
      allow('c', kDeviceWildcard, kDeviceWildcard, kDeviceMknod),
      allow('b', kDeviceWildcard, kDeviceWildcard, kDeviceMknod),
      allow('c', 1, 3, kDeviceAllAccess),                  // /dev/null
      allow('c', 1, 8, kDeviceAllAccess),                  // /dev/random
      allow('c', 1, 7, kDeviceAllAccess),                  // /dev/full
      allow('c', 5, 0, kDeviceAllAccess),                  // /dev/tty
      allow('c', 1, 5, kDeviceAllAccess),                  // /dev/zero
      allow('c', 1, 9, kDeviceAllAccess),                  // /dev/urandom
      allow('c', 136, kDeviceWildcard, kDeviceAllAccess),  // /dev/pts/*
      allow('c', 5, 2, kDeviceAllAccess),                  // /dev/ptmx
      allow('c', 10, 200, kDeviceAllAccess),               // /dev/net/tun: re-added in runc 1.2.4
  };
  return rules;
}

std::vector<DeviceRule> device_rules(const oci::Resources& resources) {
  std::vector<DeviceRule> out;
  for (size_t i = 0; i < resources.devices.size(); ++i) {
    const auto& d = resources.devices[i];
    auto type = d.type.value_or("a");
    if (type != "a" && type != "b" && type != "c") fail("invalid cgroup device type {}", log::go_quote(type));
    if (d.access.value_or("").empty()) fail("device access at {} field cannot be empty", i);
    out.push_back({.type = type[0],
                   .major = d.major.value_or(kDeviceWildcard),
                   .minor = d.minor.value_or(kDeviceWildcard),
                   .access = parse_device_access(*d.access),
                   .allow = d.allow});
  }
  const auto& defaults = default_device_rules();
  out.insert(out.end(), defaults.begin(), defaults.end());
  return out;
}

DeviceEmulator DeviceEmulator::from_rules(const std::vector<DeviceRule>& rules) {
  DeviceEmulator e;
  for (const auto& r : rules) e.apply(r);
  return e;
}

DeviceEmulator DeviceEmulator::from_list(std::string_view devices_list) {
  DeviceEmulator e;  // allow-list until an "a *:* rwm" line says otherwise
  size_t pos = 0;
  while (pos < devices_list.size()) {
    size_t end = devices_list.find('\n', pos);
    if (end == std::string_view::npos) end = devices_list.size();
    auto line = devices_list.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    std::optional<DeviceRule> rule;
    try {
      rule = parse_list_line(line);
    } catch (const Error& err) {
      fail("error parsing line {}: {}", log::go_quote(line), err.what());
    }
    e.apply(rule ? *rule : DeviceRule{.type = 'a', .allow = true});
  }
  return e;
}

void DeviceEmulator::apply(const DeviceRule& rule) {
  if (rule.type == 'a') {
    // "a" resets the whole cgroup: allow → deny-list with no exceptions, deny → allow-list.
    default_allow_ = rule.allow;
    rules_.clear();
    return;
  }
  const Key key{rule.major, rule.minor, rule.type};
  // In a deny-list an allow removes a deny exception; in an allow-list it adds an allow one.
  if (rule.allow == default_allow_)
    remove(key, rule.access);
  else
    add(key, rule.access);
}

void DeviceEmulator::add(const Key& key, unsigned access) { rules_[key] |= access; }

void DeviceEmulator::remove(const Key& key, unsigned access) {
  // The kernel silently ignores removing part of a wildcard exception; runc refuses instead so
  // nobody believes a device is blocked when it is not.
  for (Key partial : {Key{kDeviceWildcard, key.minor, key.type}, Key{key.major, kDeviceWildcard, key.type},
                      Key{kDeviceWildcard, kDeviceWildcard, key.type}}) {
    if (partial == key) continue;
    auto it = rules_.find(partial);
    if (it != rules_.end() && (it->second & access))
      fail(
          "unable to remove '{}' exception: requested rule [{{{} {} {}}} {}] not supported by devices cgroupv1 "
          "(cannot punch hole in existing wildcard rule [{{{} {} {}}} {}])",
          default_allow_ ? "deny" : "allow", int{key.type}, key.major, key.minor, device_access_string(access),
          int{partial.type}, partial.major, partial.minor, device_access_string(it->second));
  }
  auto it = rules_.find(key);
  if (it == rules_.end()) return;
  it->second &= ~access;
  if (!it->second) rules_.erase(it);
}

std::vector<DeviceRule> DeviceEmulator::transition(const DeviceEmulator& target) const {
  std::vector<DeviceRule> out;
  const std::map<Key, unsigned> none;
  const auto* old_rules = &rules_;
  // devices.list cannot show a deny-list's exceptions, so leaving one always starts afresh.
  if (deny_list() || default_allow_ != target.default_allow_) {
    out.push_back({.type = 'a', .access = kDeviceAllAccess, .allow = target.default_allow_});
    old_rules = &none;
  }
  auto lookup = [](const std::map<Key, unsigned>& rules, const Key& key) {
    auto it = rules.find(key);
    return it == rules.end() ? 0u : it->second;
  };
  for (const auto& [key, access] : *old_rules) {
    if (unsigned dropped = access & ~lookup(target.rules_, key))
      out.push_back({key.type, key.major, key.minor, dropped, target.default_allow_});
  }
  for (const auto& [key, access] : target.rules_) {
    if (unsigned gained = access & ~lookup(*old_rules, key))
      out.push_back({key.type, key.major, key.minor, gained, !target.default_allow_});
  }
  return out;
}

std::vector<DeviceRule> DeviceEmulator::rules() const { return DeviceEmulator().transition(*this); }

}  // namespace deltabox::cgroups
