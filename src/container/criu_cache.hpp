#pragma once
// CRIU probes kernel features on its first run in a mount namespace (it runs iptables and
// ip6tables, among others: ~60 ms here) unless /run/criu.kdat caches them, and it keeps that
// cache only where /run is a tmpfs (gone at reboot, together with the kernel it describes).
// Every anchor has a /run of its own, so every container would pay the probe on its first
// snapshot and every fork on its restore. They share one copy instead, kept in the layer store
// under the current boot's id.
#include <sys/types.h>

#include <filesystem>

namespace deltabox {

// A new anchor's /run gets the shared copy, if there is one.
void seed_criu_cache(const std::filesystem::path& store, pid_t anchor);
// After CRIU ran in an anchor: its cache becomes the shared copy, if there is none yet.
void keep_criu_cache(const std::filesystem::path& store, pid_t anchor);
// A fork's anchor gets its source's cache (whatever the state root is).
void share_criu_cache(pid_t from_anchor, pid_t to_anchor);

}  // namespace deltabox
