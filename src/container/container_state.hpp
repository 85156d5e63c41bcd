#pragma once
// What deltabox remembers about a container between CLI calls (the state file), and how the
// runtime status is derived from it.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <oci/config.hpp>
#include <oci/state.hpp>

namespace deltabox {

// Snapshot-enabled containers only: where their layers live and which generation runs.
struct SnapshotState {
  std::filesystem::path store;        // the layer store root
  std::string generation;             // the current generation's id
  pid_t workload_pid = 0;             // its init, as the host sees it
  uint64_t workload_start_time = 0;
  std::vector<std::string> layers;    // its overlay lowers, top first; the bundle rootfs last
  std::string head;                   // the snapshot it descends from ("" for none)
  uint64_t next_id = 1;               // ids for new generations and snapshots

  nlohmann::json to_json() const;
  static SnapshotState from_json(const nlohmann::json& json);
};

struct ContainerState {
  std::string id;
  std::filesystem::path bundle;
  std::filesystem::path rootfs;
  std::string created;          // RFC3339Nano, UTC, as runc prints it
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;  // /proc/<pid>/stat field 22: tells a live init from a reused pid
  nlohmann::json config;         // config.json as validated at create
  nlohmann::json cgroup;         // cgroups::Manager::to_state()
  bool systemd_cgroup = false;
  bool rootless = false;
  std::string criu = "criu";  // the criu binary, as --criu named it at create
  std::optional<SnapshotState> snapshots;

  nlohmann::json to_json() const;
  static ContainerState from_json(const nlohmann::json& json);
  oci::Config parsed_config() const { return oci::parse_config(config); }
  std::map<std::string, std::string> annotations() const;
};

// Go's time.RFC3339Nano in UTC: fractional seconds without trailing zeros.
std::string rfc3339_nano_now();
// Start time of a process in clock ticks since boot, or 0 when it does not exist or is a zombie.
uint64_t process_start_time(pid_t pid);
bool same_process_alive(pid_t pid, uint64_t start_time);

}  // namespace deltabox
