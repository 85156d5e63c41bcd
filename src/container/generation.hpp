#pragma once
// A generation: one incarnation of a snapshot-enabled container's workload. Generation 0 starts
// from the bundle; every later one is restored from a snapshot (a template made ahead, or a cold
// restore). Each has its own writable layer, overlay mount point (in the anchor's mount
// namespace) and leaf cgroup below the container's cgroup; all share the container's other
// namespaces.
#include <filesystem>
#include <memory>
#include <string>

#include "cgroups/manager.hpp"

namespace deltabox {

struct GenerationPaths {
  std::filesystem::path layer;   // writable layer (subvolume): upper/ + work/
  std::filesystem::path upper;
  std::filesystem::path work;
  std::filesystem::path merged;  // where its overlay is mounted, in the anchor's namespace
  std::string cgroup_leaf;       // below the container's cgroup
};

GenerationPaths generation_paths(const std::filesystem::path& container_store_dir, const std::string& generation);

// The container's store dir: <store>/containers/<id>.
std::filesystem::path container_store_dir(const std::filesystem::path& store, const std::string& id);

// A leaf below the container's cgroup (the anchor's, a generation's). create() it before use;
// `existing` marks it as ours to remove (destroy()) when it was created by an earlier call.
std::unique_ptr<cgroups::Manager> leaf_cgroup(const cgroups::Manager& container, const std::string& leaf,
                                              bool existing = false);

inline constexpr const char* kAnchorCgroupLeaf = "anchor";

}  // namespace deltabox
