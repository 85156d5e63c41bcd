#include "cgroups/hybrid.hpp"

#include <csignal>

#include "util/error.hpp"

namespace deltabox::cgroups {

void HybridManager::create() {
  v1_.create();
  try {
    v2_.create();
  } catch (...) {
    try {
      v1_.destroy();
    } catch (const Error&) {  // keep the original error
    }
    throw;
  }
}

void HybridManager::enter_self(bool v2_already_joined) {
  v1_.enter_self(v2_already_joined);
  v2_.enter_self(v2_already_joined);
}

void HybridManager::add_process(pid_t pid) {
  v1_.add_process(pid);
  v2_.add_process(pid);
}

void HybridManager::freeze() {
  if (v2_.can_freeze())
    v2_.freeze();
  else
    v1_.freeze();
}

void HybridManager::thaw() {
  v2_.thaw();
  // Also covers a container frozen through v1 by a runtime on a kernel without cgroup.freeze.
  if (v1_.can_freeze() && v1_.freezer_state() != FreezerState::thawed) v1_.thaw();
}

FreezerState HybridManager::freezer_state() const {
  return v2_.can_freeze() ? v2_.freezer_state() : v1_.freezer_state();
}

void HybridManager::kill_all(int signal) {
  if (signal == SIGKILL && v2_.can_kill())
    v2_.kill_all(signal);
  else
    signal_each_frozen(signal);
}

void HybridManager::destroy() {
  std::exception_ptr first;
  for (Manager* m : {static_cast<Manager*>(&v2_), static_cast<Manager*>(&v1_)}) {
    try {
      m->destroy();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

std::string HybridManager::path(const std::string& controller) const {
  return controller.empty() ? v2_.path(controller) : v1_.path(controller);
}

std::vector<Placement> HybridManager::placements() const {
  auto out = v1_.placements();
  out.push_back(v2_.placements().front());
  return out;
}

}  // namespace deltabox::cgroups
