#pragma once
// Dumping a generation's process tree and restoring one from a snapshot's images, with CRIU
// running in the container anchor's namespaces (see criu/client.hpp for what CRIU needs).
#include <sys/types.h>

#include <filesystem>
#include <string>

#include <oci/config.hpp>

#include "cgroups/manager.hpp"
#include "container/container_state.hpp"
#include "criu/client.hpp"

namespace deltabox {

// A cgroup filesystem mounted in the generation (the config's /sys/fs/cgroup). CRIU cannot
// dump cgroupfs mounts rooted inside a cgroup namespace, so they are external mounts: on
// restore each becomes a bind of the target container's cgroup dir in the same hierarchy.
struct CgroupMountRef {
  std::string mountpoint;   // inside the generation's mount namespace
  std::string controllers;  // "cpu,cpuacct", "name=systemd"; "" for cgroup2
};
std::vector<CgroupMountRef> cgroup_mounts_of(pid_t pid);

// What a dump declared external, recorded with the snapshot for its restores.
struct DumpExternals {
  std::vector<CgroupMountRef> cgroup_mounts;
  // CRIU keys of the generation's fds 0-2 where they still are the anchor's (the container's
  // stdio): a restore reconnects them to the anchor's; "" where the workload replaced them.
  std::vector<std::string> stdio;
  nlohmann::json to_json() const;
  static DumpExternals from_json(const nlohmann::json& json);
};
std::vector<std::string> shared_stdio_keys(pid_t workload, pid_t anchor);

struct GenerationCriu {
  const ContainerState& state;
  const oci::Config& config;
  const cgroups::Manager& container_cgroup;
  std::string criu_path;
  // The container's lock (-1: none held). CRIU keeps a copy, so a verb killed while CRIU works
  // leaves the lock held until CRIU is done: whoever recovers never races a running CRIU.
  int lock_fd = -1;
  // Where CRIU writes its log (-1: the images dir). Forks restore one snapshot's images side by
  // side: each logs into its own state dir.
  int work_dir_fd = -1;
};

// CRIU's freezer check passes at once when the generation's cgroup is already frozen; CRIU
// leaves it frozen afterwards, the caller thaws.
// Returns what it declared external (record it with the snapshot).
DumpExternals dump_generation(const GenerationCriu& c, const std::string& generation, int images_dir_fd);

// Restores images as a new generation: CRIU runs in the generation's leaf cgroup so the tree
// stays there, its root becomes the anchor's child. The generation's root must be mounted at its
// merged path in the anchor's mount namespace already.
criu::RestoreResult restore_generation(const GenerationCriu& c, const std::string& generation, int images_dir_fd,
                                       const DumpExternals& externals, bool leave_stopped);

// Mounts / unmounts a generation's overlay in the anchor's mount namespace.
void mount_generation_root(pid_t anchor, const std::vector<std::string>& lowers, const std::filesystem::path& upper,
                           const std::filesystem::path& work, const std::filesystem::path& merged);
void unmount_generation_root(pid_t anchor, const std::filesystem::path& merged);

// The namespaces CRIU shares with the container: its own, except pid and mount which it enters
// at the anchor's level (the generation's nested ones are what it dumps).
int criu_namespace_flags(const oci::Config& config);

}  // namespace deltabox
