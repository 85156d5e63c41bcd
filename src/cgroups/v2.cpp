#include "cgroups/v2.hpp"

#include <csignal>

#include "cgroups/wait.hpp"
#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

using namespace std::chrono_literals;

// As in v1.cpp: a task in uninterruptible sleep can delay freezing indefinitely.
constexpr auto kFreezeTimeout = 10s;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

V2Manager::V2Manager(Placement placement) : dir_(std::move(placement)), procs_file_(dir_.file("cgroup.procs")) {
  if (!dir_.hierarchy().unified())
    fail("cgroup v2 manager given the v1 hierarchy {}", dir_.hierarchy().name());
}

void V2Manager::enter_self(bool v2_already_joined) {
  if (!v2_already_joined) write_raw(procs_file_.c_str(), "0");
}

void V2Manager::add_process(pid_t pid) { dir_.write("cgroup.procs", std::to_string(pid)); }

void V2Manager::freeze() {
  refuse_if_holding_us(pids());
  dir_.write_checked("cgroup.freeze", "1");
  if (wait_events_field(dir_.file("cgroup.events"), "frozen", "1", Clock::now() + kFreezeTimeout)) return;
  dir_.write("cgroup.freeze", "0");
  fail("timed out waiting for cgroup {} to freeze", dir_.dir());
}

void V2Manager::thaw() {
  if (can_freeze()) dir_.write_checked("cgroup.freeze", "0");
}

FreezerState V2Manager::freezer_state() const {
  if (!can_freeze() || trim(dir_.read("cgroup.freeze")) == "0") return FreezerState::thawed;
  return events_field(dir_.read("cgroup.events"), "frozen") == "1" ? FreezerState::frozen : FreezerState::freezing;
}

void V2Manager::kill_all(int signal) {
  if (signal != SIGKILL || !can_kill()) return signal_each_frozen(signal);
  refuse_if_holding_us(pids());
  dir_.write_checked("cgroup.kill", "1");
}

void V2Manager::wait_empty(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  bool gone = false;
  if (!dir_.exists())
    gone = true;  // destroyed already: nothing can be in it
  else if (dir_.has("cgroup.events"))
    gone = wait_unpopulated(dir_.file("cgroup.events"), [this] { return pids(); }, deadline);
  else
    gone = wait_pids_gone([this] { return pids(); }, deadline);
  if (!gone) fail("timed out waiting for cgroup {} to become empty", dir_.dir());
}

std::string V2Manager::path(const std::string& controller) const {
  return controller.empty() ? dir_.dir() : std::string();
}

}  // namespace deltabox::cgroups
