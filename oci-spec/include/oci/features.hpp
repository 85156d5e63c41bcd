#pragma once
// The OCI Features structure (runtime-spec v1.2 features.md, features-linux.md) that `features`
// prints. Every property except the two versions may be unknown: std::nullopt is serialized by
// omission, and an empty list or `false` is a real answer ("none", "not supported").
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace oci {

struct CgroupFeatures {
  std::optional<bool> v1;
  std::optional<bool> v2;
  std::optional<bool> systemd;
  std::optional<bool> systemd_user;  // JSON "systemdUser"
  std::optional<bool> rdma;

  bool operator==(const CgroupFeatures&) const = default;
};

struct SeccompFeatures {
  std::optional<bool> enabled;
  std::optional<std::vector<std::string>> actions;    // SCMP_ACT_*
  std::optional<std::vector<std::string>> operators;  // SCMP_CMP_*
  std::optional<std::vector<std::string>> archs;      // SCMP_ARCH_*
  std::optional<std::vector<std::string>> known_flags;      // JSON "knownFlags"
  std::optional<std::vector<std::string>> supported_flags;  // JSON "supportedFlags"

  bool operator==(const SeccompFeatures&) const = default;
};

// apparmor, selinux and intelRdt all have just this shape.
struct EnabledFeature {
  std::optional<bool> enabled;

  bool operator==(const EnabledFeature&) const = default;
};

struct MountExtensionsFeatures {
  std::optional<EnabledFeature> idmap;

  bool operator==(const MountExtensionsFeatures&) const = default;
};

struct LinuxFeatures {
  std::optional<std::vector<std::string>> namespaces;    // "pid", "network", ...
  std::optional<std::vector<std::string>> capabilities;  // "CAP_CHOWN", ...
  std::optional<CgroupFeatures> cgroup;
  std::optional<SeccompFeatures> seccomp;
  std::optional<EnabledFeature> apparmor;
  std::optional<EnabledFeature> selinux;
  std::optional<EnabledFeature> intel_rdt;  // JSON "intelRdt"
  std::optional<MountExtensionsFeatures> mount_extensions;  // JSON "mountExtensions"

  bool operator==(const LinuxFeatures&) const = default;
};

struct Features {
  std::string oci_version_min;  // REQUIRED
  std::string oci_version_max;  // REQUIRED
  std::optional<std::vector<std::string>> hooks;
  std::optional<std::vector<std::string>> mount_options;
  std::optional<LinuxFeatures> linux;
  std::optional<std::map<std::string, std::string>> annotations;
  // A trailing "." marks a prefix ("org.systemd.property.").
  std::optional<std::vector<std::string>> potentially_unsafe_config_annotations;

  bool operator==(const Features&) const = default;
};

nlohmann::json to_json(const Features& features);

}  // namespace oci
