#include "cgroups/manager.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>

#include "cgroups/hybrid.hpp"
#include "cgroups/paths.hpp"
#include "cgroups/v1.hpp"
#include "cgroups/v2.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

constexpr int kStateVersion = 1;

nlohmann::json placement_to_json(const Placement& p) {
  return {{"controllers", p.hierarchy.controllers}, {"mount_point", p.hierarchy.mount_point},
          {"mount_root", p.hierarchy.mount_root},   {"path", p.path},
          {"dir", p.dir},                           {"created", p.created}};
}

Placement placement_from_json(const nlohmann::json& j) {
  Placement p;
  p.hierarchy.controllers = j.at("controllers").get<std::vector<std::string>>();
  p.hierarchy.mount_point = j.at("mount_point").get<std::string>();
  p.hierarchy.mount_root = j.at("mount_root").get<std::string>();
  p.path = j.at("path").get<std::string>();
  p.dir = j.at("dir").get<std::string>();
  p.created = j.at("created").get<std::vector<std::string>>();
  return p;
}

}  // namespace

const char* to_string(FreezerState state) {
  switch (state) {
    case FreezerState::thawed: return "thawed";
    case FreezerState::freezing: return "freezing";
    case FreezerState::frozen: return "frozen";
  }
  return "?";
}

std::unique_ptr<Manager> make_manager(std::vector<Placement> placements) {
  std::vector<Placement> v1;
  std::vector<Placement> v2;
  for (auto& p : placements) (p.hierarchy.unified() ? v2 : v1).push_back(std::move(p));
  if (v2.size() > 1) fail("more than one cgroup2 hierarchy given");
  if (!v1.empty() && !v2.empty()) return std::make_unique<HybridManager>(std::move(v1), std::move(v2.front()));
  if (!v2.empty()) return std::make_unique<V2Manager>(std::move(v2.front()));
  if (!v1.empty()) return std::make_unique<V1Manager>(std::move(v1));
  fail("no cgroup hierarchy is mounted");
}

std::unique_ptr<Manager> Manager::for_container(const std::string& cgroups_path, const std::string& id,
                                                bool systemd) {
  if (systemd) {
    if (::access("/run/systemd/system", F_OK) != 0)
      throw Error("systemd cgroup driver requested, but systemd is not running");
    fail("systemd cgroup driver is not supported (cgroups path {:?})", cgroups_path);
  }
  return for_hierarchies(probe_hierarchies(), cgroups_path, id);
}

std::unique_ptr<Manager> Manager::for_hierarchies(const std::vector<OwnHierarchy>& hierarchies,
                                                  const std::string& cgroups_path, const std::string& id) {
  return make_manager(plan_placements(hierarchies, cgroups_path, id));
}

std::unique_ptr<Manager> Manager::from_state(const nlohmann::json& state) {
  std::vector<Placement> placements;
  Layout layout;
  try {
    if (state.at("version").get<int>() != kStateVersion)
      fail("unsupported cgroup state version {}", state.at("version").dump());
    layout = layout_from_string(state.at("layout").get<std::string>());
    for (const auto& h : state.at("hierarchies")) placements.push_back(placement_from_json(h));
  } catch (const nlohmann::json::exception& e) {
    fail("invalid cgroup state: {}", e.what());
  }
  auto manager = make_manager(std::move(placements));  // validates every placement
  if (manager->layout() != layout)
    fail("cgroup state says layout {} but its hierarchies make {}", to_string(layout),
         to_string(manager->layout()));
  return manager;
}

nlohmann::json Manager::to_state() const {
  auto hierarchies = nlohmann::json::array();
  for (const auto& p : placements()) hierarchies.push_back(placement_to_json(p));
  return {{"version", kStateVersion}, {"layout", to_string(layout())}, {"hierarchies", hierarchies}};
}

void Manager::refuse_if_holding_us(const std::vector<pid_t>& pids) const {
  for (pid_t own : {pid_t{1}, ::getpid()}) {
    if (std::binary_search(pids.begin(), pids.end(), own))
      fail("cgroup {} holds process {} ({}): refusing to freeze or signal it",
           placements().front().dir, own, own == 1 ? "init" : "this runtime");
  }
}

void Manager::signal_each_frozen(int signal) {
  refuse_if_holding_us(pids());
  bool frozen = false;
  if (can_freeze()) {
    try {
      freeze();
      frozen = true;
    } catch (const Error&) {
      // Like runc: a cgroup that will not freeze still gets its signal.
    }
  }
  std::exception_ptr error;
  try {
    auto list = pids();
    refuse_if_holding_us(list);
    for (pid_t pid : list)
      if (::kill(pid, signal) < 0 && errno != ESRCH) throw_errno(fmt::format("kill {} with signal {}", pid, signal));
  } catch (...) {
    error = std::current_exception();
  }
  if (frozen) thaw();
  if (error) std::rethrow_exception(error);
}

}  // namespace deltabox::cgroups
