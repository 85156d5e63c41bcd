#include "container/container_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include "util/error.hpp"

namespace deltabox {

nlohmann::json SnapshotState::to_json() const {
  return {{"store", store.string()},       {"generation", generation}, {"workload_pid", workload_pid},
          {"workload_start_time", workload_start_time}, {"layers", layers}, {"head", head},
          {"next_id", next_id}};
}

SnapshotState SnapshotState::from_json(const nlohmann::json& j) {
  SnapshotState s;
  s.store = j.at("store").get<std::string>();
  s.generation = j.at("generation").get<std::string>();
  s.workload_pid = j.at("workload_pid").get<pid_t>();
  s.workload_start_time = j.at("workload_start_time").get<uint64_t>();
  s.layers = j.at("layers").get<std::vector<std::string>>();
  s.head = j.value("head", "");
  s.next_id = j.value("next_id", uint64_t{1});
  return s;
}

nlohmann::json ContainerState::to_json() const {
  nlohmann::json out = {{"id", id},
          {"bundle", bundle.string()},
          {"rootfs", rootfs.string()},
          {"created", created},
          {"init_pid", init_pid},
          {"init_start_time", init_start_time},
          {"config", config},
          {"cgroup", cgroup},
          {"systemd_cgroup", systemd_cgroup},
          {"rootless", rootless},
          {"criu", criu}};
  if (snapshots) out["snapshots"] = snapshots->to_json();
  return out;
}

ContainerState ContainerState::from_json(const nlohmann::json& json) {
  try {
    ContainerState s;
    s.id = json.at("id").get<std::string>();
    s.bundle = json.at("bundle").get<std::string>();
    s.rootfs = json.at("rootfs").get<std::string>();
    s.created = json.at("created").get<std::string>();
    s.init_pid = json.at("init_pid").get<pid_t>();
    s.init_start_time = json.at("init_start_time").get<uint64_t>();
    s.config = json.at("config");
    s.cgroup = json.at("cgroup");
    s.systemd_cgroup = json.value("systemd_cgroup", false);
    s.rootless = json.value("rootless", false);
    s.criu = json.value("criu", "criu");
    if (auto it = json.find("snapshots"); it != json.end()) s.snapshots = SnapshotState::from_json(*it);
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("corrupt container state: {}", e.what());
  }
}

std::map<std::string, std::string> ContainerState::annotations() const {
  std::map<std::string, std::string> out;
  if (auto it = config.find("annotations"); it != config.end() && it->is_object())
    for (const auto& [k, v] : it->items())
      if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

std::string rfc3339_nano_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  ::gmtime_r(&ts.tv_sec, &utc);
  char date[32];
  ::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string frac = fmt::format("{:09d}", ts.tv_nsec);
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return frac.empty() ? fmt::format("{}Z", date) : fmt::format("{}.{}Z", date, frac);
}

uint64_t process_start_time(pid_t pid) {
  char path[64];
  ::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const char* p = ::strrchr(buf, ')');
  if (!p) return 0;
  p += 2;  // ") " then field 3 (state)
  char state = *p;
  if (state == 'Z' || state == 'X') return 0;
  for (int field = 3; field < 22; ++field) {
    p = ::strchr(p, ' ');
    if (!p) return 0;
    ++p;
  }
  return ::strtoull(p, nullptr, 10);
}

bool same_process_alive(pid_t pid, uint64_t start_time) {
  return pid > 0 && start_time != 0 && process_start_time(pid) == start_time;
}

}  // namespace deltabox
