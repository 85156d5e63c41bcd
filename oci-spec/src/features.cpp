#include "oci/features.hpp"

#include "json_writer.hpp"

namespace oci {
namespace {

using nlohmann::json;
using namespace json_writer;  // nullopt is omitted; empty lists and false are written

json write_enabled(const EnabledFeature& f) {
  json j = json::object();
  put(j, "enabled", f.enabled);
  return j;
}

json write_cgroup(const CgroupFeatures& c) {
  json j = json::object();
  put(j, "v1", c.v1);
  put(j, "v2", c.v2);
  put(j, "systemd", c.systemd);
  put(j, "systemdUser", c.systemd_user);
  put(j, "rdma", c.rdma);
  return j;
}

json write_seccomp(const SeccompFeatures& s) {
  json j = json::object();
  put(j, "enabled", s.enabled);
  put(j, "actions", s.actions);
  put(j, "operators", s.operators);
  put(j, "archs", s.archs);
  put(j, "knownFlags", s.known_flags);
  put(j, "supportedFlags", s.supported_flags);
  return j;
}

json write_mount_extensions(const MountExtensionsFeatures& m) {
  json j = json::object();
  put_object(j, "idmap", m.idmap, write_enabled);
  return j;
}

json write_linux(const LinuxFeatures& l) {
  json j = json::object();
  put(j, "namespaces", l.namespaces);
  put(j, "capabilities", l.capabilities);
  put_object(j, "cgroup", l.cgroup, write_cgroup);
  put_object(j, "seccomp", l.seccomp, write_seccomp);
  put_object(j, "apparmor", l.apparmor, write_enabled);
  put_object(j, "selinux", l.selinux, write_enabled);
  put_object(j, "intelRdt", l.intel_rdt, write_enabled);
  put_object(j, "mountExtensions", l.mount_extensions, write_mount_extensions);
  return j;
}

}  // namespace

json to_json(const Features& f) {
  json j{{"ociVersionMin", f.oci_version_min}, {"ociVersionMax", f.oci_version_max}};
  put(j, "hooks", f.hooks);
  put(j, "mountOptions", f.mount_options);
  put_object(j, "linux", f.linux, write_linux);
  put(j, "annotations", f.annotations);
  put(j, "potentiallyUnsafeConfigAnnotations", f.potentially_unsafe_config_annotations);
  return j;
}

}  // namespace oci
