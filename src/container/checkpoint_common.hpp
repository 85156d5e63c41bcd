#pragma once
// What checkpoint and restore share: their directories, runc's option rules and error texts.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "criu/errors.hpp"
#include "criu/options.hpp"
#include "util/fd.hpp"

namespace deltabox {

// `mkdir -p` with runc's modes (its MkdirAll(imagePath, 0600) gives every new level 0600).
void make_dirs(const std::filesystem::path& path, mode_t mode);
// O_DIRECTORY fd of path; "open <path>: <strerror>" when it cannot be opened.
UniqueFd open_dir(const std::filesystem::path& path);

// --manage-cgroups-mode: "" is CRIU's default (no value sent); throws runc's error otherwise.
std::optional<criu::CgroupMode> parse_cgroup_mode(const std::string& name);
// --empty-ns: runc always sets CLONE_NEWNET (it does not manage network devices) and accepts
// only "network" besides.
uint32_t parse_empty_ns(const std::vector<std::string>& names);

// runc's wording for a failed CRIU run, then CRIU's own lines from its log, so the one error
// record callers (podman, containerd) show says why.
[[noreturn]] void throw_criu_failure(const criu::CriuError& e, const char* type, const std::filesystem::path& log);

}  // namespace deltabox
