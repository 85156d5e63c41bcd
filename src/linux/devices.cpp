#include "linux/devices.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "linux/mount_options.hpp"
#include "linux/safe_path.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

struct DefaultDevice {
  const char* path;
  int64_t major;
  int64_t minor;
};

// runtime-spec "Default Devices" (runc's AllowedDevices with a path).
constexpr std::array<DefaultDevice, 6> kDefaultDevices = {{
    {"/dev/null", 1, 3},
    {"/dev/zero", 1, 5},
    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8},
    {"/dev/urandom", 1, 9},
    {"/dev/tty", 5, 0},
}};

constexpr mode_t kDefaultDeviceMode = 0666;

// mknod's mode is filtered through the umask; the spec's fileMode is meant literally.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old_); }
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;

 private:
  mode_t old_;
};

std::string device_path(const std::string& path) { return clean_path("/" + path); }

mode_t device_type_bits(const oci::Device& dev) {
  if (dev.type == "c" || dev.type == "u") return S_IFCHR;
  if (dev.type == "b") return S_IFBLK;
  if (dev.type == "p") return S_IFIFO;
  fail("device {}: invalid type \"{}\"", dev.path, dev.type);
}

// In a user namespace mknod is not allowed: bind the host's node at the same path onto an empty
// file instead (the node's owner and mode are then the host's).
void bind_device(int parent_fd, const std::string& name, const oci::Device& dev) {
  const std::string what = fmt::format("bind-mount device {} (in rootfs)", dev.path);
  int created = ::openat(parent_fd, name.c_str(), O_CREAT | O_EXCL | O_NOFOLLOW | O_RDONLY | O_CLOEXEC, 0);
  if (created >= 0) {
    ::close(created);
  } else if (errno != EEXIST) {
    throw_errno(what + ": create mount point");
  }
  UniqueFd target(::openat(parent_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!target) throw_errno(what + ": open mount point");
  UniqueFd source(::open(dev.path.c_str(), O_PATH | O_CLOEXEC));
  if (!source) throw_errno(what + ": open the host's node");
  bind_mount_fds(source.get(), target.get(), false, what);
}

void create_device(int root_fd, const oci::Device& dev, bool bind) {
  const std::string path = device_path(dev.path);
  if (path == "/") fail("device {}: mknod over the rootfs", dev.path);
  const size_t slash = path.rfind('/');
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  const std::string name = path.substr(slash + 1);
  UniqueFd parent = mkdir_all_in_root(root_fd, dir, 0755);
  if (bind) {
    bind_device(parent.get(), name, dev);
    return;
  }
  const mode_t mode = device_type_bits(dev) | (dev.file_mode.value_or(kDefaultDeviceMode) & 07777);
  const dev_t number = ::makedev(static_cast<unsigned int>(dev.major), static_cast<unsigned int>(dev.minor));
  int rc;
  {
    UmaskGuard no_umask(0);
    rc = ::mknodat(parent.get(), name.c_str(), mode, number);
  }
  if (rc < 0) {
    if (errno == EEXIST) return;  // the image or a mount already provides it
    if (errno == EPERM) {
      bind_device(parent.get(), name, dev);
      return;
    }
    throw_errno(fmt::format("mknod {} (in rootfs)", dev.path));
  }
  if (::fchownat(parent.get(), name.c_str(), dev.uid.value_or(0), dev.gid.value_or(0), AT_SYMLINK_NOFOLLOW) < 0) {
    throw_errno(fmt::format("chown {} (in rootfs)", dev.path));
  }
}

// The spec wants /dev/ptmx to be the devpts instance's ptmx, whatever the image had there.
void setup_ptmx(int dev_fd) {
  if (::unlinkat(dev_fd, "ptmx", 0) < 0 && errno != ENOENT) throw_errno("remove /dev/ptmx (in rootfs)");
  if (::symlinkat("pts/ptmx", dev_fd, "ptmx") < 0) throw_errno("symlink /dev/ptmx -> pts/ptmx (in rootfs)");
}

void setup_dev_symlinks(int dev_fd) {
  std::vector<std::pair<const char*, const char*>> links = {
      {"/proc/self/fd", "fd"},
      {"/proc/self/fd/0", "stdin"},
      {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"},
  };
  // kcore exists only with CONFIG_PROC_KCORE.
  if (::access("/proc/kcore", F_OK) == 0) links.emplace_back("/proc/kcore", "core");
  for (const auto& [target, name] : links) {
    if (::symlinkat(target, dev_fd, name) < 0 && errno != EEXIST) {
      throw_errno(fmt::format("symlink /dev/{} -> {} (in rootfs)", name, target));
    }
  }
}

UniqueFd open_rootfs(const std::string& rootfs) {
  UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno(fmt::format("open rootfs {}", rootfs));
  return root;
}

}  // namespace

bool needs_dev_setup(const oci::Config& config) {
  return std::none_of(config.mounts.begin(), config.mounts.end(), [](const oci::Mount& m) {
    const bool bind = m.type == "bind" || parse_mount_options(m.options).bind();
    return bind && device_path(m.destination) == "/dev";
  });
}

std::vector<oci::Device> devices_to_create(const oci::Config& config) {
  static const std::vector<oci::Device> none;
  const std::vector<oci::Device>& listed = config.linux ? config.linux->devices : none;
  auto is_listed = [&](const std::string& path) {
    return std::any_of(listed.begin(), listed.end(),
                       [&](const oci::Device& d) { return device_path(d.path) == path; });
  };
  std::vector<oci::Device> out;
  for (const DefaultDevice& d : kDefaultDevices) {
    if (is_listed(d.path)) continue;
    out.push_back(oci::Device{"c", d.path, d.major, d.minor, kDefaultDeviceMode, 0u, 0u});
  }
  for (const oci::Device& d : listed) {
    if (d.path.empty() || device_path(d.path) == "/dev/ptmx") continue;
    oci::Device dev = d;
    dev.file_mode = d.file_mode.value_or(kDefaultDeviceMode) & 07777;
    dev.uid = d.uid.value_or(0);
    dev.gid = d.gid.value_or(0);
    out.push_back(std::move(dev));
  }
  return out;
}

void create_devices(const MountContext& ctx) {
  UniqueFd root = open_rootfs(ctx.rootfs);
  for (const oci::Device& dev : devices_to_create(ctx.config)) {
    create_device(root.get(), dev, ctx.in_user_namespace);
  }
  UniqueFd dev = mkdir_all_in_root(root.get(), "/dev", 0755);
  setup_ptmx(dev.get());
  setup_dev_symlinks(dev.get());
}

void create_console_mount_point(const MountContext& ctx) {
  UniqueFd root = open_rootfs(ctx.rootfs);
  UmaskGuard no_umask(0);
  create_file_in_root(root.get(), "/dev/console", 0666);
}

}  // namespace deltabox
