#include "oci/state.hpp"

#include <array>
#include <utility>

#include "oci/json_reader.hpp"

namespace oci {
namespace {

constexpr std::array<std::pair<Status, const char*>, 5> kStatusNames{{
    {Status::creating, "creating"},
    {Status::created, "created"},
    {Status::running, "running"},
    {Status::paused, "paused"},
    {Status::stopped, "stopped"},
}};

Status read_status(const JsonNode& node) {
  std::string name = node.as<std::string>();
  std::optional<Status> status = status_from_name(name);
  if (!status) node.fail("unknown status " + json_quote(name));
  return *status;
}

// Absent is fine: the spec only requires pid while the container is created or running.
int read_pid(const JsonNode& node) {
  int pid = node.absent() ? 0 : node.as<int>();
  if (pid < 0) node.fail("must not be negative");
  return pid;
}

}  // namespace

const char* status_name(Status status) {
  for (const auto& [value, name] : kStatusNames)
    if (value == status) return name;
  return "unknown";
}

std::optional<Status> status_from_name(const std::string& name) {
  for (const auto& [value, known] : kStatusNames)
    if (name == known) return value;
  return std::nullopt;
}

nlohmann::json to_json(const State& state) {
  nlohmann::json j{{"ociVersion", state.oci_version},
                   {"id", state.id},
                   {"status", status_name(state.status)},
                   {"pid", state.pid},
                   {"bundle", state.bundle}};
  if (!state.annotations.empty()) j["annotations"] = state.annotations;
  return j;
}

State parse_state(const nlohmann::json& json) {
  if (!json.is_object()) throw SpecError("", "state must be a JSON object");
  JsonNode n(json, "");
  return {.oci_version = n.req<std::string>("ociVersion"),
          .id = n.req<std::string>("id"),
          .status = read_status(n.require("status")),
          .pid = read_pid(n.field("pid")),
          .bundle = n.req<std::string>("bundle"),
          .annotations = n.get<std::map<std::string, std::string>>("annotations")};
}

}  // namespace oci
