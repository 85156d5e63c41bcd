#include "container/checkpoint_externals.hpp"


#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "container/bundle.hpp"
#include "container/generation_criu.hpp"
#include "container/snapshot_setup.hpp"
#include "linux/safe_path.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {

constexpr const char* kDescriptors = "descriptors.json";
constexpr const char* kExternalStdio = "deltabox-stdio.json";

// runc adds these to every container's device list (specconv.AllowedDevices) and declares each
// one external: in a user namespace they are bind mounts of the host's nodes.
const char* const kDefaultDevices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/urandom", "/dev/random"};

bool is_cgroup(const oci::Mount& m) { return m.type && (*m.type == "cgroup" || *m.type == "cgroup2") && !is_bind_mount(m); }

std::string inside(const std::string& destination) { return clean_path("/" + destination); }

std::string host_source(const oci::Mount& m, const std::filesystem::path& bundle) {
  std::filesystem::path src = m.source.value_or("");
  return (src.is_relative() ? bundle / src : src).lexically_normal().string();
}

std::vector<std::string> device_paths(const oci::Config& config) {
  std::vector<std::string> out(std::begin(kDefaultDevices), std::end(kDefaultDevices));
  if (config.linux)
    for (const auto& d : config.linux->devices)
      if (std::find(out.begin(), out.end(), inside(d.path)) == out.end()) out.push_back(inside(d.path));
  return out;
}

// runc masks files (not directories) by binding /dev/null over them; the restore binds the
// host's /dev/null back.
std::vector<std::string> masked_files(const oci::Config& config, pid_t init_pid) {
  std::vector<std::string> out;
  if (!config.linux) return out;
  for (const auto& path : config.linux->masked_paths) {
    struct stat st {};
    if (::stat(fmt::format("/proc/{}/root{}", init_pid, inside(path)).c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
      out.push_back(inside(path));
  }
  return out;
}

// Masked directories are empty read-only tmpfs mounts. CRIU would archive each one with tar and
// gzip (3-4 ms apiece on dump and again on restore); as external mounts they cost nothing.
constexpr const char* kMaskedDirKey = "deltabox-masked-dir";

std::set<std::string> mountpoints_of(pid_t pid) {
  std::set<std::string> out;
  std::istringstream lines(read_file(fmt::format("/proc/{}/mountinfo", pid)));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint;
    if (fields >> id >> parent >> dev >> root >> mountpoint) out.insert(mountpoint);
  }
  return out;
}

std::vector<std::string> masked_dirs(const oci::Config& config, pid_t init_pid) {
  std::vector<std::string> out;
  if (!config.linux) return out;
  const auto mounted = mountpoints_of(init_pid);
  for (const auto& path : config.linux->masked_paths) {
    struct stat st {};
    const std::string p = inside(path);
    if (mounted.count(p) && ::stat(fmt::format("/proc/{}/root{}", init_pid, p).c_str(), &st) == 0 &&
        S_ISDIR(st.st_mode))
      out.push_back(p);
  }
  return out;
}

// Where the container sees each of its cgroup hierarchies (see cgroups/mount.cpp): the mount
// destination itself for cgroup v2, else one directory per hierarchy named like the host's.
KeyValues cgroup_mounts(const oci::Config& config, const cgroups::Manager& cgroups) {
  KeyValues out;
  for (const auto& m : config.mounts) {
    if (!is_cgroup(m)) continue;
    const std::string dest = inside(m.destination);
    auto placements = cgroups.placements();
    if (cgroups.layout() == cgroups::Layout::v2) {
      out.emplace_back(dest, placements.front().dir);
      continue;
    }
    for (const auto& p : placements) {
      auto name = std::filesystem::path(p.hierarchy.mount_point).filename().string();
      out.emplace_back(dest + "/" + name, p.dir);
    }
  }
  return out;
}

const char* criu_ns_name(oci::NamespaceType type) {
  switch (type) {
    case oci::NamespaceType::network: return "net";
    case oci::NamespaceType::pid: return "pid";
    case oci::NamespaceType::mount: return "mnt";
    case oci::NamespaceType::ipc: return "ipc";
    case oci::NamespaceType::uts: return "uts";
    case oci::NamespaceType::user: return "user";
    case oci::NamespaceType::cgroup: return "cgroup";
    case oci::NamespaceType::time: return "time";
  }
  return "?";
}

// runc's criuNsToKey: "extRootNetNS", "extRootPidNS".
std::string ns_key(oci::NamespaceType type) {
  std::string name = criu_ns_name(type);
  name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
  return "extRoot" + name + "NS";
}

bool external_kind(oci::NamespaceType type) {
  return type == oci::NamespaceType::network || type == oci::NamespaceType::pid;
}

void write_json_at(int dir_fd, const char* name, const nlohmann::json& json) {
  UniqueFd fd(::openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throw_errno(fmt::format("create {}", name));
  write_all(fd.get(), json.dump());
}

std::vector<std::string> read_string_list_at(int dir_fd, const char* name) {
  try {
    return nlohmann::json::parse(read_file_at(dir_fd, name)).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}", name, e.what());
  }
}

}  // namespace

KeyValues dump_external_mounts(const oci::Config& config, pid_t init_pid) {
  KeyValues out;
  for (const auto& m : config.mounts)
    if (is_bind_mount(m)) out.emplace_back(inside(m.destination), inside(m.destination));
  // Cgroup mounts are external whatever they are inside (binds of the container's cgroup dirs,
  // or cgroupfs rooted in a cgroup namespace, which CRIU cannot dump either).
  for (const auto& ref : cgroup_mounts_of(init_pid)) out.emplace_back(ref.mountpoint, ref.mountpoint);
  for (const auto& path : masked_files(config, init_pid)) out.emplace_back(path, "/dev/null");
  for (const auto& path : masked_dirs(config, init_pid)) out.emplace_back(path, kMaskedDirKey);
  for (const auto& path : device_paths(config)) out.emplace_back(path, path);
  return out;
}

KeyValues restore_external_mounts(const oci::Config& config, const std::filesystem::path& bundle,
                                  const cgroups::Manager& cgroups, const std::filesystem::path& empty_dir) {
  KeyValues out;
  for (const auto& m : config.mounts)
    if (is_bind_mount(m)) out.emplace_back(inside(m.destination), host_source(m, bundle));
  for (auto& kv : cgroup_mounts(config, cgroups)) out.push_back(std::move(kv));
  if (config.linux && !config.linux->masked_paths.empty()) {
    out.emplace_back("/dev/null", "/dev/null");
    out.emplace_back(kMaskedDirKey, empty_dir.string());
  }
  for (const auto& path : device_paths(config)) out.emplace_back(path, path);
  return out;
}

std::vector<std::string> dump_external_namespaces(const oci::Config& config) {
  std::vector<std::string> out;
  if (!config.linux) return out;
  for (const auto& ns : config.linux->namespaces) {
    if (ns.path.empty() || !external_kind(ns.type)) continue;
    struct stat st {};
    if (::stat(ns.path.c_str(), &st) < 0) throw_errno(fmt::format("stat {}", ns.path));
    out.push_back(fmt::format("{}[{}]:{}", criu_ns_name(ns.type), st.st_ino, ns_key(ns.type)));
  }
  return out;
}

RestoreNamespaces restore_external_namespaces(const oci::Config& config) {
  RestoreNamespaces out;
  if (!config.linux) return out;
  for (const auto& ns : config.linux->namespaces) {
    if (ns.path.empty()) continue;
    if (ns.type == oci::NamespaceType::cgroup) fail("Do not know how to handle namespace cgroup");
    if (!external_kind(ns.type)) {
      out.join_ns.emplace_back(criu_ns_name(ns.type), ns.path);
      continue;
    }
    UniqueFd fd(::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail("Requested {} namespace {} does not exist", criu_ns_name(ns.type), ns.path);
    out.inherit_fd.emplace_back(ns_key(ns.type), fd.get());
    out.fds.push_back(std::move(fd));
  }
  return out;
}

std::vector<std::string> read_descriptors(pid_t pid) {
  std::vector<std::string> out;
  for (int fd = 0; fd < 3; ++fd) {
    char target[4096];
    ssize_t n = ::readlink(fmt::format("/proc/{}/fd/{}", pid, fd).c_str(), target, sizeof target);
    // runc records "/dev/null" for a closed fd too (it never leaves one closed).
    out.emplace_back(n > 0 ? std::string(target, static_cast<size_t>(n)) : "/dev/null");
  }
  return out;
}

void write_descriptors(int images_dir_fd, const std::vector<std::string>& descriptors) {
  write_json_at(images_dir_fd, kDescriptors, descriptors);
}

std::vector<std::string> load_descriptors(const std::filesystem::path& images) {
  return read_string_list_at(AT_FDCWD, (images / kDescriptors).c_str());
}

std::vector<std::string> external_stdio_files(pid_t pid) {
  // Mount ids the container's mount namespace has: a file on one of them is CRIU's to reopen.
  std::set<unsigned> own;
  std::istringstream mounts(read_file(fmt::format("/proc/{}/mountinfo", pid)));
  for (std::string line; std::getline(mounts, line);) own.insert(static_cast<unsigned>(std::stoul(line)));
  auto keys = stdio_keys(pid);
  for (auto& key : keys) {
    unsigned mnt_id = 0;
    unsigned long ino = 0;
    if (std::sscanf(key.c_str(), "file[%x:%lx]", &mnt_id, &ino) != 2 || own.count(mnt_id)) key.clear();
  }
  return keys;
}

void write_external_stdio(int images_dir_fd, const std::vector<std::string>& keys) {
  if (std::all_of(keys.begin(), keys.end(), [](const std::string& k) { return k.empty(); })) return;
  write_json_at(images_dir_fd, kExternalStdio, keys);
}

std::vector<std::string> load_external_stdio(const std::filesystem::path& images) {
  const auto path = images / kExternalStdio;
  if (::access(path.c_str(), F_OK) < 0) return {};
  return read_string_list_at(AT_FDCWD, path.c_str());
}

}  // namespace deltabox
