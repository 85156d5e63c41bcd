#include "container/container.hpp"

#include <unistd.h>

#include "container/generation.hpp"
#include "container/helper.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

Container::Container(const StateStore& store, ContainerState state, ContainerLock lock)
    : store_(&store), state_(std::move(state)), lock_(std::move(lock)) {}

namespace {
ContainerState read_state(const StateStore& store, const std::string& id) {
  auto json = store.load(id);
  if (!json) throw Error("container does not exist");
  return ContainerState::from_json(*json);
}
}  // namespace

Container Container::load(const StateStore& store, const std::string& id) {
  ContainerLock lock = store.lock(id);
  Container container(store, read_state(store, id), std::move(lock));
  if (container.state_.snapshots) container.recover_interrupted_work();
  return container;
}

Container Container::peek(const StateStore& store, const std::string& id) {
  validate_container_id(id);
  return Container(store, read_state(store, id), ContainerLock());
}

std::unique_ptr<cgroups::Manager> Container::cgroups() const {
  return cgroups::Manager::from_state(state_.cgroup);
}

std::unique_ptr<cgroups::Manager> Container::workload_cgroups() const {
  auto container = cgroups();
  if (!state_.snapshots) return container;
  return leaf_cgroup(*container, generation_paths({}, state_.snapshots->generation).cgroup_leaf, true);
}

pid_t Container::workload_pid() const { return state_.snapshots ? state_.snapshots->workload_pid : state_.init_pid; }

uint64_t Container::workload_start_time() const {
  return state_.snapshots ? state_.snapshots->workload_start_time : state_.init_start_time;
}

std::filesystem::path Container::start_fifo() const { return store_->dir(state_.id) / "exec.fifo"; }

oci::Status Container::status() const {
  if (!same_process_alive(state_.init_pid, state_.init_start_time)) return oci::Status::stopped;
  if (::access(start_fifo().c_str(), F_OK) == 0) return oci::Status::created;
  if (cgroups()->freezer_state() == cgroups::FreezerState::frozen) return oci::Status::paused;
  return oci::Status::running;
}

pid_t Container::init_pid() const { return status() == oci::Status::stopped ? 0 : state_.init_pid; }

std::vector<pid_t> Container::processes() const {
  if (!state_.snapshots) return cgroups()->pids();
  // The anchor and the live generation; templates waiting beside it are not the user's.
  auto pids = workload_cgroups()->pids();
  pids.insert(pids.begin(), state_.init_pid);
  return pids;
}

nlohmann::ordered_json runc_state_json(const Container& container, const std::string& owner) {
  const auto& s = container.state();
  nlohmann::ordered_json out;
  out["ociVersion"] = oci::kSpecVersion;
  out["id"] = s.id;
  const oci::Status status = container.status();
  out["pid"] = status == oci::Status::stopped ? 0 : s.init_pid;
  out["status"] = oci::status_name(status);
  out["bundle"] = s.bundle.string();
  out["rootfs"] = s.rootfs.string();
  out["created"] = s.created;
  if (auto annotations = s.annotations(); !annotations.empty()) out["annotations"] = annotations;
  out["owner"] = owner;
  return out;
}

void write_pid_file(const std::string& path, pid_t pid) {
  write_file_atomic(path, std::to_string(pid), 0644, Durability::survive_process_crash);
}

}  // namespace deltabox
