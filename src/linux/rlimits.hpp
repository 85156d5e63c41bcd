#pragma once
// process.rlimits and process.oomScoreAdj.
#include <sys/types.h>

#include <optional>
#include <string_view>
#include <vector>

#include <oci/config.hpp>

namespace deltabox {

// "RLIMIT_NOFILE" -> RLIMIT_NOFILE, for the 16 Linux resources.
std::optional<int> rlimit_from_name(std::string_view name);

// Sets every limit with prlimit(2) on pid (0 = ourselves), in config order. An unknown type is an
// error naming process.rlimits[i].type; a refused change explains why (e.g. raising a hard
// limit without CAP_SYS_RESOURCE).
void apply_rlimits(const std::vector<oci::Rlimit>& rlimits, pid_t pid = 0);

// Writes /proc/<pid>/oom_score_adj (pid 0 = self).
void set_oom_score_adj(int value, pid_t pid = 0);

}  // namespace deltabox
