#pragma once
// The container's root filesystem, built by the container's init: it runs in its new mount
// namespace (and pid/user namespaces when configured), single-threaded, with cwd = bundle.
//
// runc's order (libcontainer/rootfs_linux.go prepareRootfs + finalizeRootfs, standard_init):
//   set_root_propagation      "/" becomes rslave so nothing below propagates to the host
//   bind_rootfs               rootfs becomes a mount point (pivot_root needs one)
//   mount_entries             config.mounts, in order, targets resolved inside the rootfs
//   create_devices            unless a bind mount provides /dev (needs_dev_setup, devices.hpp)
//   create_console_mount_point  when process.terminal
//   … createRuntime / createContainer hooks run here (old root still visible) …
//   pivot_root | move_root_chroot
//   reopen_dev_null           stdio that was the host's /dev/null now is the container's
//   … console: bind the pty slave on /dev/console …
//   remount_readonly_mounts   tmpfs and /dev mounts asked to be "ro" (kept rw until now)
//   remount_root_readonly     when root.readonly
//   set_hostname / set_domainname / write_sysctls / readonly_paths / mask_paths
//   apply_root_propagation    the requested rootfsPropagation, last (unbindable refuses binds)
// prepare_rootfs and finalize_rootfs below run those two halves in that order.
//
// Mechanism: targets are resolved with safe_path.hpp (openat2 RESOLVE_IN_ROOT) and every mount is
// attached to the resolved fd with the new mount API (fsopen/fsmount, open_tree, move_mount,
// mount_setattr), so a path is never re-resolved from a string between check and use. Errors
// name the mount: "mount proc on /proc (in rootfs): fsmount: Operation not permitted".
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <oci/config.hpp>

#include "util/fd.hpp"

namespace deltabox {

struct MountContext {
  const oci::Config& config;
  std::string rootfs;  // absolute host path of the rootfs
  std::string bundle;  // relative bind-mount sources are relative to this
  bool in_user_namespace = false;
  // Mounts cgroupfs for a mounts[] entry of type cgroup / cgroup2 (the cgroups code owns what
  // that means on v1, v2 and hybrid hosts). `target` is the absolute host path of the directory,
  // already created and resolved inside the rootfs (symlinks in the rootfs followed there);
  // `flags` are the entry's MS_* flags (MS_RDONLY, MS_NOSUID, ...).
  std::function<void(const std::string& target, unsigned long flags)> mount_cgroup;
  std::string mount_label;  // SELinux context for new filesystems; ignored when SELinux is off
};

// ---- the sequence ----

// runc's mapping of linux.rootfsPropagation: "" → MS_SLAVE|MS_REC (the default), else the named
// propagation, always with MS_REC (plain "slave" on "/" alone would leave submounts shared with
// the host). Accepts "shared", "slave", "private", "unbindable" and their "r" forms. Throws on
// anything else.
unsigned long root_propagation_flags(const std::string& rootfs_propagation);
void set_root_propagation(const std::string& rootfs_propagation);
// After pivot_root: re-apply a requested shared/slave/unbindable propagation to the new "/" (runc
// skips private, which bind_rootfs already made the rootfs' parent; and the default).
void apply_root_propagation(const std::string& rootfs_propagation);

// runc's prepareRoot tail: make the mount holding the rootfs private (walking up until a mount
// point is found; pivot_root refuses a shared parent) and bind the rootfs onto itself (MS_REC).
void bind_rootfs(const std::string& rootfs);

void mount_entries(const MountContext& ctx);

// pivot_root(".", ".") trick: no directory for the old root needed. The old root is made rslave
// before the lazy unmount so the unmount cannot propagate to the host. cwd ends at "/".
void pivot_root(const std::string& rootfs);
// --no-pivot: hide the host's proc/sysfs mounts outside the rootfs (the kernel would otherwise
// judge new procfs mounts against them), MS_MOVE the rootfs onto "/", chroot(".").
void move_root_chroot(const std::string& rootfs);

// If fd 0, 1 or 2 is the host's /dev/null, point it at the container's /dev/null.
void reopen_dev_null();

// After pivot: tmpfs mounts and a /dev mount asked to be "ro" were mounted rw so they could be
// filled; make them read-only now.
void remount_readonly_mounts(const oci::Config& config);
// root.readonly: "/" read-only, keeping whatever flags are locked on it.
void remount_root_readonly();

// After pivot. Files get /dev/null bound over them, directories an empty read-only tmpfs.
// Missing paths are skipped; a symlink is followed inside the root only (what it points to is
// masked, as runc does).
void mask_paths(const std::vector<std::string>& paths, const std::string& mount_label = {});
// After pivot. Each path is bound onto itself (recursively) and that mount made read-only,
// keeping its nosuid/nodev/noexec. Missing paths are skipped.
void readonly_paths(const std::vector<std::string>& paths);

void set_hostname(const std::string& hostname);
void set_domainname(const std::string& domainname);
// "net.ipv4.ip_forward" → "/proc/sys/net/ipv4/ip_forward". Throws for keys that are empty,
// contain "/" or ".." or empty components, or start/end with ".".
std::string sysctl_path(const std::string& key);
// After pivot, into the container's procfs (refused if /proc/sys is not procfs).
void write_sysctls(const std::map<std::string, std::string>& sysctls);

// The first half: everything up to and including pivot_root (or move_root_chroot when
// no_pivot) and reopen_dev_null. `before_pivot` runs where the
// createRuntime/createContainer hooks belong.
void prepare_rootfs(const MountContext& ctx, bool no_pivot,
                    const std::function<void()>& before_pivot = {});
// The second half, after the console is set up: read-only remounts, sysctls, readonlyPaths,
// maskedPaths, then apply_root_propagation. Hostname and domainname are left to the caller (they need a new UTS namespace).
void finalize_rootfs(const oci::Config& config);

// ---- primitives shared with devices.cpp ----

// Clone the mount at source_fd (open_tree OPEN_TREE_CLONE, AT_RECURSIVE when recursive) and
// attach it on target_fd (move_mount). Returns the fd of the attached mount, through which
// mount_setattr can still change it. `what` prefixes errors.
UniqueFd bind_mount_fds(int source_fd, int target_fd, bool recursive, const std::string& what);

// Creates a user namespace with the given mappings (a helper child is forked, mapped and
// reaped) and returns its /proc/<pid>/ns/user fd: the userns_fd of an idmapped mount.
UniqueFd userns_for_mappings(const std::vector<oci::IdMapping>& uid_mappings,
                             const std::vector<oci::IdMapping>& gid_mappings);

}  // namespace deltabox
