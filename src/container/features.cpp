#include "container/features.hpp"

#include "linux/capabilities.hpp"
#include "linux/mount_options.hpp"
#include "linux/seccomp.hpp"

namespace deltabox {

oci::Features runtime_features() {
  oci::Features f;
  f.oci_version_min = "1.0.0";
  f.oci_version_max = oci::kSpecVersion;
  // Hooks run by the runtime: the spec's six stages.
  f.hooks = std::vector<std::string>{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};
  f.mount_options = known_mount_options();
  oci::LinuxFeatures linux;
  linux.namespaces = std::vector<std::string>{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"};
  linux.capabilities = all_capability_names();
  linux.cgroup = oci::CgroupFeatures{true, true, false, false, false};
  oci::SeccompFeatures seccomp;
  seccomp.enabled = true;
  seccomp.actions = seccomp_known_actions();
  seccomp.operators = seccomp_known_operators();
  seccomp.archs = seccomp_known_archs();
  seccomp.known_flags = seccomp_known_flags();
  seccomp.supported_flags = seccomp_supported_flags();
  linux.seccomp = seccomp;
  linux.apparmor = oci::EnabledFeature{false};
  linux.selinux = oci::EnabledFeature{false};
  linux.intel_rdt = oci::EnabledFeature{false};
  linux.mount_extensions = oci::MountExtensionsFeatures{oci::EnabledFeature{false}};
  f.linux = linux;
  f.annotations = std::map<std::string, std::string>{
      {"io.github.seccomp.libseccomp.version", libseccomp_version()},
      {"io.deltabox.snapshots", "true"},
  };
  f.potentially_unsafe_config_annotations = std::vector<std::string>{"bundle", "org.criu.config"};
  return f;
}

}  // namespace deltabox
