#pragma once
// cgroup v2 has no devices files: access is decided by a BPF_PROG_TYPE_CGROUP_DEVICE program
// attached to the cgroup. The program is built by hand from the emulator's clean rule list,
// instruction for instruction what runc's devicefilter generates (itself after crun's ebpf.c):
//
//   r2 = ctx->access_type & 0xffff   (device type: 1 block, 2 char)
//   r3 = ctx->access_type >> 16      (access: 1 mknod, 2 read, 4 write)
//   r4 = ctx->major, r5 = ctx->minor
//   per rule: if type/access/major/minor do not match, jump to the next block; else return allow
//   last block: return the default (1 for a deny-list, 0 for an allow-list)
#include <linux/bpf.h>

#include <vector>

#include "cgroups/devices.hpp"

namespace deltabox::cgroups {

using BpfProgram = std::vector<bpf_insn>;

// The filter enforcing `rules` (applied in order through the emulator, like v1).
BpfProgram device_filter_program(const std::vector<DeviceRule>& rules);

// Loads the program and attaches it to the cgroup2 directory `cgroup_fd` with BPF_F_ALLOW_MULTI,
// replacing (BPF_F_REPLACE, else attach-then-detach) the device programs already attached there
// so exactly one filter stays, as runc does.
void attach_device_filter(int cgroup_fd, const BpfProgram& program);

// Device programs attached to the cgroup itself (BPF_PROG_QUERY); for tests and diagnostics.
std::vector<uint32_t> attached_device_filter_ids(int cgroup_fd);

}  // namespace deltabox::cgroups
