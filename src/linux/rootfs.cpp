#include "linux/rootfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>
#include <memory>
#include <optional>

#include "linux/devices.hpp"
#include "linux/mount_options.hpp"
#include "linux/safe_path.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {

// Flags a bind remount can change on one mount, besides the atime family.
constexpr unsigned long kPerMountFlags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW;
constexpr unsigned long kAtimeFlags = MS_NOATIME | MS_RELATIME | MS_STRICTATIME | MS_NODIRATIME;
constexpr unsigned long kAtimeModeFlags = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;
// runc's mntLockFlags: what the kernel locks on mounts copied into a less privileged mount
// namespace (MNT_LOCK_*); a remount may not clear them.
constexpr unsigned long kLockableFlags =
    MS_RDONLY | MS_NODEV | MS_NOEXEC | MS_NOSUID | MS_NOATIME | MS_RELATIME | MS_NODIRATIME;

// Entries under /proc that may be mount targets: files lxcfs emulates (runc's checkProcMount).
constexpr std::array<std::string_view, 10> kProcMountWhitelist = {
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",    "/proc/swaps",
    "/proc/uptime",  "/proc/loadavg",   "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
};

constexpr ino_t kProcRootIno = 1;

bool selinux_enabled() {
  static const bool enabled = ::access("/sys/fs/selinux/enforce", F_OK) == 0;
  return enabled;
}

struct stat fstat_or_throw(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) < 0) throw_errno(what + ": fstat");
  return st;
}

void set_attr(int fd, unsigned int at_flags, mount_attr attr, const std::string& what) {
  if (::mount_setattr(fd, "", at_flags | AT_EMPTY_PATH, &attr, sizeof attr) < 0) throw_errno(what);
}

void attach(int mount_fd, int target_fd, const std::string& what) {
  if (::move_mount(mount_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    throw_errno(what + ": move_mount");
  }
}

// ---- filesystems through fsopen/fsconfig/fsmount ----

// The fs context keeps the kernel's own explanation ("e tmpfs: Bad value for 'size'"); it is
// much better than a bare EINVAL.
std::string fs_context_log(int fs_fd) {
  std::string out;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fs_fd, buf, sizeof buf);
    if (n <= 0) break;
    std::string_view line(buf, static_cast<size_t>(n));
    while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (line.size() > 2 && line[1] == ' ') line.remove_prefix(2);
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

[[noreturn]] void fs_fail(int fs_fd, int err, const std::string& what, const std::string& step) {
  std::string log = fs_context_log(fs_fd);
  throw Error(fmt::format("{}: {}{}", what, step, log.empty() ? "" : " (" + log + ")"), err);
}

// mount(2)'s data string, split as the kernel does (on commas), except that a double-quoted
// value may hold commas (SELinux contexts with category sets).
std::vector<std::string> split_fs_options(std::string_view data) {
  std::vector<std::string> out;
  std::string current;
  bool quoted = false;
  for (char c : data) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

std::string unquote(std::string_view value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  return std::string(value);
}

// A new, detached filesystem mount: the equivalent of mount(source, -, type, flags, data).
UniqueFd make_filesystem(const std::string& type, const std::string& source, const std::string& data,
                         unsigned long flags, const std::string& what) {
  UniqueFd fs(::fsopen(type.c_str(), FSOPEN_CLOEXEC));
  if (!fs) throw_errno(what + ": fsopen");
  auto set_flag = [&](const std::string& key) {
    if (::fsconfig(fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0) < 0) {
      fs_fail(fs.get(), errno, what, "fsconfig " + key);
    }
  };
  auto set_string = [&](const std::string& key, const std::string& value) {
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0) < 0) {
      fs_fail(fs.get(), errno, what, fmt::format("fsconfig {}={}", key, value));
    }
  };
  if (!source.empty()) set_string("source", source);
  // Superblock flags mount(2) would take from MS_*; the per-mount ones go to fsmount below.
  if (flags & MS_RDONLY) set_flag("ro");
  if (flags & MS_SYNCHRONOUS) set_flag("sync");
  if (flags & MS_DIRSYNC) set_flag("dirsync");
  if (flags & MS_LAZYTIME) set_flag("lazytime");
  if (flags & MS_MANDLOCK) set_flag("mand");
  for (const std::string& option : split_fs_options(data)) {
    size_t eq = option.find('=');
    if (eq == std::string::npos) {
      set_flag(option);
    } else {
      set_string(option.substr(0, eq), unquote(std::string_view(option).substr(eq + 1)));
    }
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    fs_fail(fs.get(), errno, what, "create superblock");
  }
  int mnt = ::fsmount(fs.get(), FSMOUNT_CLOEXEC, static_cast<unsigned int>(mount_attrs_from_flags(flags)));
  if (mnt < 0) fs_fail(fs.get(), errno, what, "fsmount");
  return UniqueFd(mnt);
}

// ---- options applied to a mount that exists ----

mount_attr bind_remount_attr(unsigned long flags) {
  mount_attr attr{};
  attr.attr_set = mount_attrs_from_flags(flags);
  attr.attr_clr = mount_attrs_from_flags(kPerMountFlags & ~flags);
  // As with mount(2)'s MS_REMOUNT, atime settings are kept unless one is asked for.
  if (flags & kAtimeFlags) attr.attr_clr |= MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME;
  return attr;
}

// A bind mount takes none of ro/nosuid/... when it is made: runc follows with
// MS_BIND|MS_REMOUNT|flags, i.e. "exactly these per-mount flags". If that is refused because the
// source mount has locked flags (it came from a more privileged mount namespace), runc retries
// keeping them, unless the user explicitly asked to clear one or for a different atime mode.
void remount_bind(int mount_fd, const MountFlags& options, const std::string& what) {
  if ((options.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)) == 0 && options.cleared == 0) return;
  const unsigned long wanted = options.flags & (kPerMountFlags | kAtimeFlags);
  mount_attr attr = bind_remount_attr(wanted);
  if (::mount_setattr(mount_fd, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0) return;
  const int err = errno;
  if (err != EPERM) throw_errno(err, what + ": remount with the mount's options");
  struct statfs sfs {};
  if (::fstatfs(mount_fd, &sfs) < 0) throw_errno(what + ": fstatfs");
  const unsigned long current = mount_flags_from_statfs(static_cast<unsigned long>(sfs.f_flags));
  if (current & options.cleared & kLockableFlags) {
    throw_errno(err, what + ": remount (a flag the options clear is locked on the source)");
  }
  if ((wanted & kAtimeModeFlags) && (wanted & kAtimeModeFlags) != (current & kAtimeModeFlags)) {
    throw_errno(err, what + ": remount (the atime mode is locked on the source)");
  }
  attr = bind_remount_attr(wanted | (current & kLockableFlags));
  set_attr(mount_fd, 0, attr, what + ": remount keeping locked flags");
}

void set_recursive_attrs(int mount_fd, const MountFlags& options, const std::string& what) {
  if (!options.has_recursive_attrs()) return;
  mount_attr attr{};
  attr.attr_set = options.attr_set;
  attr.attr_clr = options.attr_clr;
  set_attr(mount_fd, AT_RECURSIVE, attr, what + ": mount_setattr (recursive options)");
}

void set_propagation(int mount_fd, const std::vector<unsigned long>& propagation, const std::string& what) {
  for (unsigned long flags : propagation) {
    mount_attr attr{};
    attr.propagation = flags & ~static_cast<unsigned long>(MS_REC);
    set_attr(mount_fd, (flags & MS_REC) ? AT_RECURSIVE : 0, attr, what + ": set propagation");
  }
}

// ---- copying a directory into a fresh tmpfs (tmpcopyup) ----

void copy_tree(int src_dir, int dst_dir, const std::string& what);

void copy_entry(int src_dir, int dst_dir, const char* name, const struct stat& st, const std::string& what) {
  const mode_t perm = st.st_mode & 07777;
  auto chown_and_chmod = [&](bool chmod_too) {
    if (::fchownat(dst_dir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
      throw_errno(fmt::format("{}: tmpcopyup: chown {}", what, name));
    }
    // After chown, which drops setuid/setgid bits. The tree is a detached mount only we can
    // reach, so following a name here cannot be raced.
    if (chmod_too && ::fchmodat(dst_dir, name, perm, 0) < 0) {
      throw_errno(fmt::format("{}: tmpcopyup: chmod {}", what, name));
    }
  };
  if (S_ISDIR(st.st_mode)) {
    if (::mkdirat(dst_dir, name, 0700) < 0) throw_errno(fmt::format("{}: tmpcopyup: mkdir {}", what, name));
    UniqueFd src(::openat(src_dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    UniqueFd dst(::openat(dst_dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!src || !dst) throw_errno(fmt::format("{}: tmpcopyup: open {}", what, name));
    copy_tree(src.get(), dst.get(), what);
    chown_and_chmod(true);
  } else if (S_ISREG(st.st_mode)) {
    UniqueFd in(::openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!in) throw_errno(fmt::format("{}: tmpcopyup: open {}", what, name));
    UniqueFd out(::openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out) throw_errno(fmt::format("{}: tmpcopyup: create {}", what, name));
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(in.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(fmt::format("{}: tmpcopyup: read {}", what, name));
      if (n == 0) break;
      write_all(out.get(), std::string_view(buf, static_cast<size_t>(n)));
    }
    chown_and_chmod(true);
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlinkat(src_dir, name, target.data(), target.size());
    if (n < 0) throw_errno(fmt::format("{}: tmpcopyup: readlink {}", what, name));
    target.resize(static_cast<size_t>(n));
    if (::symlinkat(target.c_str(), dst_dir, name) < 0) {
      throw_errno(fmt::format("{}: tmpcopyup: symlink {}", what, name));
    }
    chown_and_chmod(false);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
    if (::mknodat(dst_dir, name, st.st_mode, st.st_rdev) < 0) {
      throw_errno(fmt::format("{}: tmpcopyup: mknod {}", what, name));
    }
    chown_and_chmod(true);
  }
  // Sockets are not copied: a socket file without its listener is meaningless.
}

void copy_tree(int src_dir, int dst_dir, const std::string& what) {
  int listing = ::openat(src_dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing < 0) throw_errno(what + ": tmpcopyup: open directory");
  DIR* dir = ::fdopendir(listing);
  if (!dir) {
    ::close(listing);
    throw_errno(what + ": tmpcopyup: fdopendir");
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(src_dir, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      throw_errno(fmt::format("{}: tmpcopyup: stat {}", what, name));
    }
    copy_entry(src_dir, dst_dir, entry->d_name, st, what);
  }
}

// ---- one config.json mount ----

class EntryMounter {
 public:
  explicit EntryMounter(const MountContext& ctx)
      : ctx_(ctx), root_(::open(ctx.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {
    if (!root_) throw_errno(fmt::format("open rootfs {}", ctx.rootfs));
    root_prefix_ = fd_path(root_.get());
  }

  void mount(const oci::Mount& m) {
    if (m.destination.empty()) fail("mount without a destination");
    const MountFlags options = parse_mount_options(m.options);
    const std::string type = m.type.value_or("");
    if (options.bind() || type == "bind") {
      mount_bind(m, options);
    } else if (options.idmap || !m.uid_mappings.empty() || !m.gid_mappings.empty()) {
      fail("mount {} on {}: idmapped mounts must be bind mounts", type, m.destination);
    } else if (type == "cgroup" || type == "cgroup2") {
      mount_cgroup(m, options);
    } else if (type.empty()) {
      fail("mount on {}: no type (and not a bind mount)", m.destination);
    } else {
      mount_filesystem(m, options, type);
    }
  }

 private:
  // Where the kernel says fd is, as a path inside the rootfs; also our last line of defence
  // against anything that resolved outside it.
  std::string inside_path(int fd, const std::string& what) const {
    std::string path = fd_path(fd);
    if (root_prefix_ == "/") return path;
    if (path == root_prefix_) return "/";
    if (path.size() > root_prefix_.size() && path.compare(0, root_prefix_.size(), root_prefix_) == 0 &&
        path[root_prefix_.size()] == '/') {
      return path.substr(root_prefix_.size());
    }
    fail("{}: target resolved outside the rootfs ({})", what, path);
  }

  // runc's checkProcMount (CVE-2019-16884 / CVE-2019-19921 class): only a procfs may cover
  // /proc, and nothing may be mounted inside it except lxcfs-style files.
  static void check_proc_target(const std::string& inside, bool bind, const std::string& type,
                                int source_fd, const std::string& what) {
    if (inside == "/proc") {
      if (bind) {
        struct statfs sfs {};
        if (::fstatfs(source_fd, &sfs) < 0) throw_errno(what + ": fstatfs source");
        if (sfs.f_type == PROC_SUPER_MAGIC) {
          if (fstat_or_throw(source_fd, what).st_ino != kProcRootIno) {
            fail("{}: /proc cannot be mounted because the source is not the root of a procfs mount",
                 what);
          }
          return;
        }
      } else if (type == "proc") {
        return;
      }
      fail("{}: /proc cannot be mounted because it is not of type proc", what);
    }
    if (inside.rfind("/proc/", 0) != 0) return;
    if (std::find(kProcMountWhitelist.begin(), kProcMountWhitelist.end(), inside) !=
        kProcMountWhitelist.end()) {
      return;
    }
    fail("{}: {} cannot be mounted because it is inside /proc", what, inside);
  }

  std::string check_target(int target_fd, bool bind, const std::string& type, int source_fd,
                           const std::string& what) const {
    std::string inside = inside_path(target_fd, what);
    if (inside == "/") fail("{}: cannot mount over the container's root", what);
    check_proc_target(inside, bind, type, source_fd, what);
    return inside;
  }

  std::string source_path(const std::string& source) const {
    if (!source.empty() && source.front() == '/') return source;
    return ctx_.bundle + "/" + source;
  }

  void mount_bind(const oci::Mount& m, const MountFlags& options) {
    const std::string source = source_path(m.source.value_or(""));
    const std::string what = fmt::format("bind-mount {} on {} (in rootfs)", source, m.destination);
    if (!m.source || m.source->empty()) fail("{}: no source", what);
    UniqueFd src(::open(source.c_str(), O_PATH | O_CLOEXEC));
    if (!src) throw_errno(what + ": open source");
    bind_source(m, options, src.get(), what);
  }

  void bind_source(const oci::Mount& m, const MountFlags& options, int source_fd, const std::string& what) {
    const bool is_dir = S_ISDIR(fstat_or_throw(source_fd, what).st_mode);
    UniqueFd target = is_dir ? mkdir_all_in_root(root_.get(), m.destination, 0755)
                             : create_file_in_root(root_.get(), m.destination, 0755);
    check_target(target.get(), true, "bind", source_fd, what);

    const unsigned int tree_flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH |
                                    (options.recursive() ? AT_RECURSIVE : 0);
    UniqueFd tree(::open_tree(source_fd, "", tree_flags));
    if (!tree) throw_errno(what + ": open_tree");
    if (options.idmap || !m.uid_mappings.empty() || !m.gid_mappings.empty()) {
      idmap_tree(tree.get(), m, options, what);
    }
    attach(tree.get(), target.get(), what);
    remount_bind(tree.get(), options, what);
    set_recursive_attrs(tree.get(), options, what);
    set_propagation(tree.get(), options.propagation, what);
  }

  // The mount's own mappings, else the container's (runc does the same for idmap/ridmap
  // without mappings). Mapping host IDs needs the host's user namespace, so from inside a
  // container user namespace this cannot work; the runtime would have to prepare the tree.
  void idmap_tree(int tree_fd, const oci::Mount& m, const MountFlags& options, const std::string& what) {
    if (ctx_.in_user_namespace) {
      fail("{}: idmapped mounts are not supported from inside a user namespace", what);
    }
    const bool own = !m.uid_mappings.empty() || !m.gid_mappings.empty();
    const bool inherit = !own && ctx_.config.linux.has_value();
    const auto& uids = inherit ? ctx_.config.linux->uid_mappings : m.uid_mappings;
    const auto& gids = inherit ? ctx_.config.linux->gid_mappings : m.gid_mappings;
    if (uids.empty() && gids.empty()) fail("{}: idmap requested but no uid/gid mappings given", what);
    UniqueFd userns = userns_for_mappings(uids, gids);
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns.get());
    set_attr(tree_fd, options.idmap_recursive ? AT_RECURSIVE : 0, attr, what + ": mount_setattr idmap");
  }

  void mount_cgroup(const oci::Mount& m, const MountFlags& options) {
    const std::string what = fmt::format("mount {} on {} (in rootfs)", m.type.value_or(""), m.destination);
    if (!ctx_.mount_cgroup) fail("{}: no cgroup mounter configured", what);
    UniqueFd target = mkdir_all_in_root(root_.get(), m.destination, 0755);
    const std::string inside = check_target(target.get(), false, *m.type, -1, what);
    ctx_.mount_cgroup(fd_path(target.get()), options.flags);
    if (!options.has_recursive_attrs() && options.propagation.empty()) return;
    // The mounter worked on a path; look again to get the mount it made.
    UniqueFd mounted = open_in_root(root_.get(), inside, O_PATH | O_DIRECTORY);
    set_recursive_attrs(mounted.get(), options, what);
    set_propagation(mounted.get(), options.propagation, what);
  }

  // proc and sysfs must land on a real directory: a symlink in that place is refused rather than
  // followed, even within the rootfs (runc: "must be mounted on ordinary directory").
  void require_ordinary_directory(const oci::Mount& m, const std::string& what) const {
    auto existing = open_in_root_if_exists(root_.get(), clean_path("/" + m.destination), O_PATH | O_NOFOLLOW);
    if (existing && !S_ISDIR(fstat_or_throw(existing->get(), what).st_mode)) {
      fail("{}: filesystem {} must be mounted on ordinary directory", what, m.type.value_or(""));
    }
  }

  void mount_filesystem(const oci::Mount& m, const MountFlags& options, const std::string& type) {
    const std::string what = fmt::format("mount {} on {} (in rootfs)", type, m.destination);
    const bool proc_or_sys = type == "proc" || type == "sysfs";
    if (proc_or_sys) require_ordinary_directory(m, what);
    UniqueFd target = mkdir_all_in_root(root_.get(), m.destination, 0755);
    check_target(target.get(), false, type, -1, what);

    std::string data = options.data;
    if (type == "tmpfs") {
      // Keep the covered directory's mode (runc); a "mode=" in the options still wins.
      const mode_t mode = fstat_or_throw(target.get(), what).st_mode & 07777;
      data = fmt::format("mode={:04o}", mode) + (data.empty() ? "" : "," + data);
    }
    if (!proc_or_sys && !ctx_.mount_label.empty() && selinux_enabled()) {
      data += (data.empty() ? "" : ",") + fmt::format("context=\"{}\"", ctx_.mount_label);
    }
    unsigned long flags = options.flags;
    // Filled later (devices, copies, chmod): made read-only by remount_readonly_mounts.
    if (type == "tmpfs" || clean_path("/" + m.destination) == "/dev") flags &= ~static_cast<unsigned long>(MS_RDONLY);

    UniqueFd mnt;
    try {
      mnt = make_filesystem(type, m.source.value_or(type), data, flags, what);
    } catch (const Error& e) {
      // Without its own network namespace a user namespace may not mount sysfs; runc then binds
      // the host's /sys instead.
      if (type != "sysfs" || (e.code() != EPERM && e.code() != EBUSY)) throw;
      bind_host_sysfs(m, options);
      return;
    }
    if (options.tmpcopyup && type == "tmpfs") copy_tree(target.get(), mnt.get(), what);
    attach(mnt.get(), target.get(), what);
    set_recursive_attrs(mnt.get(), options, what);
    set_propagation(mnt.get(), options.propagation, what);
  }

  void bind_host_sysfs(const oci::Mount& m, const MountFlags& options) {
    const std::string what = fmt::format("bind-mount /sys on {} (in rootfs)", m.destination);
    UniqueFd sys(::open("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!sys) throw_errno(what + ": open /sys");
    MountFlags rbind = options;
    rbind.flags |= MS_BIND | MS_REC;
    bind_source(m, rbind, sys.get(), what);
  }

  const MountContext& ctx_;
  UniqueFd root_;
  std::string root_prefix_;
};

// ---- mountinfo, for move_root_chroot ----

struct MountInfo {
  std::string mount_point;
  std::string fs_type;
};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view field) {
  auto is_octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) && is_octal(field[i + 2]) &&
        is_octal(field[i + 3])) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += field[i];
  }
  return out;
}

std::vector<MountInfo> read_mountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) throw_errno("open /proc/self/mountinfo");
  std::vector<MountInfo> mounts;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string_view> fields;
    std::string_view rest = line;
    while (!rest.empty()) {
      size_t space = rest.find(' ');
      fields.push_back(rest.substr(0, space));
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
    auto separator = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || separator == fields.end() || separator + 1 == fields.end()) continue;
    mounts.push_back({unescape_mountinfo(fields[4]), std::string(*(separator + 1))});
  }
  return mounts;
}

// runc's msMoveRoot preamble: with chroot the host's full procfs and sysfs stay reachable in the
// mount namespace, and the kernel permits new procfs/sysfs mounts by comparing them with what is
// already visible. Unmount them (or, where that is refused, cover them with a tmpfs).
void hide_host_proc_and_sys(const std::string& rootfs) {
  std::vector<MountInfo> mounts = read_mountinfo();
  // Deepest first, so a parent's lazy unmount does not pull a child away before we reach it.
  std::reverse(mounts.begin(), mounts.end());
  for (const MountInfo& info : mounts) {
    const std::string& p = info.mount_point;
    if (info.fs_type != "proc" && info.fs_type != "sysfs") continue;
    if (p == rootfs || p.rfind(rootfs + "/", 0) == 0) continue;
    // The unmount must not propagate to the host.
    if (::mount(nullptr, p.c_str(), nullptr, MS_SLAVE | MS_REC, nullptr) < 0) {
      if (errno == ENOENT || errno == EINVAL) continue;  // already gone with a parent
      throw_errno(fmt::format("make {} rslave", p));
    }
    if (::umount2(p.c_str(), MNT_DETACH) == 0) continue;
    if (errno != EINVAL && errno != EPERM) throw_errno(fmt::format("unmount {}", p));
    if (::mount("tmpfs", p.c_str(), "tmpfs", 0, nullptr) < 0) throw_errno(fmt::format("cover {} with tmpfs", p));
  }
}

void write_id_map(const std::string& file, const std::vector<oci::IdMapping>& mappings) {
  std::string text;
  for (const auto& m : mappings) text += fmt::format("{} {} {}\n", m.container_id, m.host_id, m.size);
  if (!text.empty()) write_file(file, text);
}

}  // namespace

// ---- the sequence ----

unsigned long root_propagation_flags(const std::string& rootfs_propagation) {
  if (rootfs_propagation.empty()) return MS_SLAVE | MS_REC;
  auto flags = propagation_from_name(rootfs_propagation);
  if (!flags) fail("rootfsPropagation={} is not supported", rootfs_propagation);
  return *flags | MS_REC;
}

void set_root_propagation(const std::string& rootfs_propagation) {
  unsigned long flags = root_propagation_flags(rootfs_propagation);
  // An unbindable tree cannot be bind-mounted from while the mounts are set up: stay a slave
  // until apply_root_propagation makes the new root unbindable after pivot_root.
  if (flags & MS_UNBINDABLE) flags = MS_SLAVE | MS_REC;
  if (::mount(nullptr, "/", nullptr, flags, nullptr) < 0) {
    throw_errno(fmt::format("set propagation of / ({})",
                            rootfs_propagation.empty() ? "rslave" : rootfs_propagation));
  }
}

void apply_root_propagation(const std::string& rootfs_propagation) {
  if (rootfs_propagation.empty()) return;
  const unsigned long flags = root_propagation_flags(rootfs_propagation);
  if (flags & MS_PRIVATE) return;
  if (::mount(nullptr, "/", nullptr, flags, nullptr) < 0) {
    throw_errno(fmt::format("apply rootfsPropagation {} to the new /", rootfs_propagation));
  }
}

void bind_rootfs(const std::string& rootfs) {
  // pivot_root refuses a new root whose parent mount is shared. Walk up from the rootfs to the
  // first mount point (EINVAL: not a mount point) and make it private.
  std::string path = clean_path(rootfs);
  for (;;) {
    if (::mount(nullptr, path.c_str(), nullptr, MS_PRIVATE, nullptr) == 0) break;
    if (errno != EINVAL || path == "/") throw_errno(fmt::format("make the mount holding {} private", path));
    path = clean_path(path + "/..");
  }
  if (::mount(rootfs.c_str(), rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
    throw_errno(fmt::format("bind-mount rootfs {} onto itself", rootfs));
  }
}

void mount_entries(const MountContext& ctx) {
  EntryMounter mounter(ctx);
  for (const oci::Mount& m : ctx.config.mounts) mounter.mount(m);
}

void pivot_root(const std::string& rootfs) {
  UniqueFd old_root(::open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!old_root) throw_errno("pivot_root: open /");
  UniqueFd new_root(::open(rootfs.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!new_root) throw_errno(fmt::format("pivot_root: open {}", rootfs));
  if (::fchdir(new_root.get()) < 0) throw_errno(fmt::format("pivot_root: chdir {}", rootfs));
  // With both arguments ".", the old root ends up stacked on the new one at "/": no directory
  // inside the rootfs is needed to hold it.
  if (::syscall(SYS_pivot_root, ".", ".") < 0) throw_errno(fmt::format("pivot_root {}", rootfs));
  if (::fchdir(old_root.get()) < 0) throw_errno("pivot_root: chdir to the old root");
  // rslave rather than rprivate: the host may still hold references to these mounts.
  if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) {
    throw_errno("pivot_root: make the old root rslave");
  }
  if (::umount2(".", MNT_DETACH) < 0) throw_errno("pivot_root: unmount the old root");
  if (::chdir("/") < 0) throw_errno("pivot_root: chdir /");
}

void move_root_chroot(const std::string& rootfs) {
  const std::string root = clean_path(rootfs);
  hide_host_proc_and_sys(root);
  if (::chdir(root.c_str()) < 0) throw_errno(fmt::format("chdir {}", root));
  if (::mount(root.c_str(), "/", nullptr, MS_MOVE, nullptr) < 0) throw_errno(fmt::format("move {} to /", root));
  if (::chroot(".") < 0) throw_errno(fmt::format("chroot {}", root));
  if (::chdir("/") < 0) throw_errno("chdir /");
}

void reopen_dev_null() {
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw_errno("open /dev/null in the container");
  const struct stat null_st = fstat_or_throw(null.get(), "/dev/null");
  for (int fd = 0; fd < 3; ++fd) {
    struct stat st {};
    if (::fstat(fd, &st) < 0) continue;
    // Only rdev is compared: any node for 1:3 is "the host's /dev/null" seen from here.
    if (S_ISCHR(st.st_mode) && st.st_rdev == null_st.st_rdev && ::dup3(null.get(), fd, 0) < 0) {
      throw_errno(fmt::format("reopen fd {} on /dev/null", fd));
    }
  }
}

void remount_readonly_mounts(const oci::Config& config) {
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open /");
  for (const oci::Mount& m : config.mounts) {
    const MountFlags options = parse_mount_options(m.options);
    if (!(options.flags & MS_RDONLY)) continue;
    const bool tmpfs = m.type == "tmpfs" && !options.bind();
    if (!tmpfs && clean_path("/" + m.destination) != "/dev") continue;
    const std::string what = fmt::format("remount {} read-only", m.destination);
    UniqueFd target = open_in_root(root.get(), m.destination, O_PATH | O_DIRECTORY);
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    set_attr(target.get(), 0, attr, what);
  }
}

void remount_root_readonly() {
  // mount_setattr changes only what it is told to: locked nosuid/nodev/... stay as they are.
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (::mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof attr) < 0) throw_errno("remount / read-only");
}

void mask_paths(const std::vector<std::string>& paths, const std::string& mount_label) {
  if (paths.empty()) return;
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open /");
  std::optional<UniqueFd> null;
  for (const std::string& path : paths) {
    const std::string what = fmt::format("mask {}", path);
    // A symlink is followed, but only inside the root (RESOLVE_IN_ROOT): runc masks what it
    // points to, and the image must not be able to keep content visible by linking to it.
    auto target = open_in_root_if_exists(root.get(), path, O_PATH);
    if (!target) continue;
    if (S_ISDIR(fstat_or_throw(target->get(), what).st_mode)) {
      std::string data = mount_label.empty() || !selinux_enabled() ? "" : fmt::format("context=\"{}\"", mount_label);
      UniqueFd tmpfs = make_filesystem("tmpfs", "tmpfs", data, MS_RDONLY, what);
      attach(tmpfs.get(), target->get(), what);
      continue;
    }
    if (!null) {
      null = open_in_root(root.get(), "/dev/null", O_PATH);
      const struct stat st = fstat_or_throw(null->get(), "/dev/null");
      // Binding a regular file the image planted at /dev/null would "mask" with its content.
      if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3) {
        fail("{}: /dev/null in the container is not the null device", what);
      }
    }
    bind_mount_fds(null->get(), target->get(), false, what);
  }
}

void readonly_paths(const std::vector<std::string>& paths) {
  if (paths.empty()) return;
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open /");
  for (const std::string& path : paths) {
    const std::string what = fmt::format("make {} read-only", path);
    auto target = open_in_root_if_exists(root.get(), path, O_PATH);
    if (!target) continue;
    UniqueFd mnt = bind_mount_fds(target->get(), target->get(), true, what);
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    set_attr(mnt.get(), 0, attr, what + ": mount_setattr");
  }
}

void set_hostname(const std::string& hostname) {
  if (::sethostname(hostname.data(), hostname.size()) < 0) throw_errno(fmt::format("sethostname {}", hostname));
}

void set_domainname(const std::string& domainname) {
  if (::setdomainname(domainname.data(), domainname.size()) < 0) {
    throw_errno(fmt::format("setdomainname {}", domainname));
  }
}

std::string sysctl_path(const std::string& key) {
  auto bad = [&] { fail("invalid sysctl key \"{}\"", key); };
  if (key.empty() || key.find('/') != std::string::npos || key.find("..") != std::string::npos ||
      key.front() == '.' || key.back() == '.' || key.find('\0') != std::string::npos) {
    bad();
  }
  std::string path = "/proc/sys/" + key;
  std::replace(path.begin() + 10, path.end(), '.', '/');
  return path;
}

void write_sysctls(const std::map<std::string, std::string>& sysctls) {
  if (sysctls.empty()) return;
  UniqueFd proc_sys(::open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!proc_sys) throw_errno("open /proc/sys");
  struct statfs sfs {};
  if (::fstatfs(proc_sys.get(), &sfs) < 0) throw_errno("statfs /proc/sys");
  if (sfs.f_type != PROC_SUPER_MAGIC) fail("write sysctls: /proc/sys is not procfs");
  for (const auto& [key, value] : sysctls) {
    const std::string path = sysctl_path(key);
    try {
      UniqueFd fd = open_in_root(proc_sys.get(), path.substr(10), O_WRONLY);
      write_all(fd.get(), value);
    } catch (const Error& e) {
      throw Error(fmt::format("write sysctl {}={}", key, value), e.code());
    }
  }
}

void prepare_rootfs(const MountContext& ctx, bool no_pivot, const std::function<void()>& before_pivot) {
  const std::string propagation = ctx.config.linux ? ctx.config.linux->rootfs_propagation : "";
  if (no_pivot && (root_propagation_flags(propagation) & MS_PRIVATE)) {
    fail("rootfsPropagation of [r]private is not safe without pivot_root");
  }
  set_root_propagation(propagation);
  bind_rootfs(ctx.rootfs);
  mount_entries(ctx);
  const bool dev = needs_dev_setup(ctx.config);
  if (dev) create_devices(ctx);
  if (ctx.config.process && ctx.config.process->terminal) create_console_mount_point(ctx);
  if (before_pivot) before_pivot();
  if (no_pivot) {
    move_root_chroot(ctx.rootfs);
  } else {
    pivot_root(ctx.rootfs);
  }
  if (dev) reopen_dev_null();
}

void finalize_rootfs(const oci::Config& config) {
  remount_readonly_mounts(config);
  if (config.root && config.root->readonly) remount_root_readonly();
  if (!config.linux) return;
  write_sysctls(config.linux->sysctl);
  readonly_paths(config.linux->readonly_paths);
  mask_paths(config.linux->masked_paths, config.linux->mount_label);
  // Last: an unbindable root would refuse the bind mounts above.
  apply_root_propagation(config.linux->rootfs_propagation);
}

// ---- primitives ----

UniqueFd bind_mount_fds(int source_fd, int target_fd, bool recursive, const std::string& what) {
  const unsigned int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  UniqueFd tree(::open_tree(source_fd, "", flags));
  if (!tree) throw_errno(what + ": open_tree");
  attach(tree.get(), target_fd, what);
  return tree;
}

UniqueFd userns_for_mappings(const std::vector<oci::IdMapping>& uid_mappings,
                             const std::vector<oci::IdMapping>& gid_mappings) {
  int hold[2];
  int report[2];
  if (::pipe2(hold, O_CLOEXEC) < 0) throw_errno("idmap: pipe");
  UniqueFd hold_read(hold[0]), hold_write(hold[1]);
  if (::pipe2(report, O_CLOEXEC) < 0) throw_errno("idmap: pipe");
  UniqueFd report_read(report[0]), report_write(report[1]);

  pid_t pid = ::fork();
  if (pid < 0) throw_errno("idmap: fork");
  if (pid == 0) {
    // The child only exists to own a user namespace. It reports its pid as the mounted procfs
    // names it (we may be in a pid namespace that procfs does not belong to), then waits for
    // the parent to close the pipe.
    hold_write.reset();
    report_read.reset();
    if (::unshare(CLONE_NEWUSER) < 0) ::_exit(1);
    char self[32];
    ssize_t n = ::readlink("/proc/self", self, sizeof self);
    if (n <= 0 || ::write(report_write.get(), self, static_cast<size_t>(n)) != n) ::_exit(1);
    report_write.reset();
    char c;
    while (::read(hold_read.get(), &c, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);
  }
  report_write.reset();
  hold_read.reset();
  auto reap = [&] {
    hold_write.reset();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  };
  try {
    char buf[32];
    ssize_t n;
    do {
      n = ::read(report_read.get(), buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) fail("idmap: the helper process could not create a user namespace");
    const std::string proc = "/proc/" + std::string(buf, static_cast<size_t>(n));
    write_id_map(proc + "/uid_map", uid_mappings);
    write_id_map(proc + "/gid_map", gid_mappings);
    UniqueFd ns(::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) throw_errno("idmap: open the helper's user namespace");
    reap();
    return ns;
  } catch (...) {
    reap();
    throw;
  }
}

}  // namespace deltabox
