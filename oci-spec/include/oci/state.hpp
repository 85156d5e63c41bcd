#pragma once
// The OCI state object (runtime-spec runtime.md "State"): what `state` prints and what every hook
// reads on stdin.
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace oci {

// `paused` is runc's addition; the spec allows runtimes to add states.
enum class Status { creating, created, running, paused, stopped };

const char* status_name(Status status);
std::optional<Status> status_from_name(const std::string& name);

struct State {
  std::string oci_version;
  std::string id;
  Status status = Status::creating;
  int pid = 0;  // 0 once stopped
  std::string bundle;
  std::map<std::string, std::string> annotations;

  bool operator==(const State&) const = default;
};

// Keys ociVersion, id, status, pid, bundle, annotations (omitted when empty).
nlohmann::json to_json(const State& state);
// Throws SpecError (from oci/config.hpp) naming the bad field, e.g. "status: unknown status "x"".
State parse_state(const nlohmann::json& json);

}  // namespace oci
