#pragma once
// Device nodes and the standard /dev symlinks inside the rootfs (runc's createDevices,
// setupPtmx, setupDevSymlinks). Runs before pivot_root, after mount_entries.
#include <vector>

#include <oci/config.hpp>

#include "linux/rootfs.hpp"

namespace deltabox {

// False when a bind mount (type "bind" or a bind/rbind option) covers /dev: the host's nodes are
// then used as they are and nothing is created.
bool needs_dev_setup(const oci::Config& config);

// The nodes to create: the spec's defaults (/dev/null, zero, full, random, urandom, tty: char
// devices, 0666, root-owned) except those whose path the config also lists, then
// linux.devices in order (fileMode defaults to 0666, its type bits are ignored; uid/gid to 0).
// /dev/ptmx is left out: it is a symlink to pts/ptmx.
std::vector<oci::Device> devices_to_create(const oci::Config& config);

// mknod each device inside the rootfs (parents created), chmod to fileMode despite the umask,
// chown to uid/gid. In a user namespace, or when mknod is refused, bind-mount the host's node at
// the same path onto an empty file instead (runc's bindMountDeviceNode). Existing nodes are kept.
// Then /dev/ptmx → pts/ptmx and the fd, stdin, stdout, stderr (and core, when /proc/kcore
// exists) symlinks. Call only when needs_dev_setup().
void create_devices(const MountContext& ctx);

// An empty rootfs/dev/console (0666) for the console code to bind the pty slave onto later.
void create_console_mount_point(const MountContext& ctx);

}  // namespace deltabox
