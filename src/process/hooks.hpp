#pragma once
// OCI hooks: each runs with the container's state JSON on stdin, its own args and env, and an
// optional timeout. Where a hook runs (runtime or container namespace) is the caller's business.
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include <oci/config.hpp>
#include <oci/state.hpp>

namespace deltabox {

struct HookState {
  std::string id;
  oci::Status status = oci::Status::creating;
  pid_t pid = 0;
  std::string bundle;
  std::map<std::string, std::string> annotations;
  std::string to_json() const;
};

// Runs hooks in order; throws Error("error running <stage> hook #N: ...") on the first failure
// (non-zero exit, signal, timeout), with its output, as runc reports it.
void run_hooks(const std::vector<oci::Hook>& hooks, const HookState& state, const char* stage);
// The spec says failures of these stages only warn.
void run_hooks_warn_only(const std::vector<oci::Hook>& hooks, const HookState& state, const char* stage);

}  // namespace deltabox
