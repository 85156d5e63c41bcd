#pragma once
// Reading an OCI bundle the way create (and restore) must: runc's checks and messages.
#include <filesystem>

#include <oci/config.hpp>

namespace deltabox {

// <bundle>/config.json, parsed and validated for create.
oci::Config load_bundle_config(const std::filesystem::path& bundle);

// The container's root directory: root.path against the bundle. It must exist, be a directory
// and already be canonical (runc's rule: a symlink cannot redirect the root).
std::filesystem::path rootfs_of(const oci::Config& config, const std::filesystem::path& bundle);

// A mount of config.json that binds a host path (type "bind", or option bind/rbind).
bool is_bind_mount(const oci::Mount& mount);

}  // namespace deltabox
