#include "cgroups/v1.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "cgroups/wait.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::cgroups {
namespace {

using namespace std::chrono_literals;

// Freezing waits for every task to reach the refrigerator; a task stuck in uninterruptible sleep
// can hold that up indefinitely, so give up (and thaw) eventually rather than hang a CLI call.
constexpr auto kFreezeTimeout = 10s;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A new cpuset cgroup starts with empty cpus/mems, and no task can join it until they are set.
void fill_cpuset(int parent_fd, int dir_fd) {
  for (const char* name : {"cpuset.cpus", "cpuset.mems"}) {
    std::string mine, parents;
    try {
      mine = trim(read_file_at(dir_fd, name));
      if (!mine.empty()) continue;
      parents = trim(read_file_at(parent_fd, name));
    } catch (const Error& e) {
      if (e.code() == ENOENT) continue;  // not a cpuset hierarchy with prefixed names
      throw;
    }
    if (parents.empty()) continue;
    UniqueFd fd(::openat(dir_fd, name, O_WRONLY | O_CLOEXEC));
    if (!fd) throw_errno(fmt::format("open {}", name));
    write_all(fd.get(), parents);
  }
}

FreezerState parse_freezer_state(const std::string& text, const std::string& file) {
  auto state = trim(text);
  if (state == "THAWED") return FreezerState::thawed;
  if (state == "FREEZING") return FreezerState::freezing;
  if (state == "FROZEN") return FreezerState::frozen;
  fail("unexpected freezer state {:?} in {}", state, file);
}

}  // namespace

V1Manager::V1Manager(std::vector<Placement> placements) {
  for (auto& p : placements) {
    if (p.hierarchy.unified()) fail("cgroup v1 manager given the cgroup2 hierarchy at {}", p.hierarchy.mount_point);
    dirs_.emplace_back(std::move(p));
    tasks_files_.push_back(dirs_.back().file("tasks"));
  }
  if (dirs_.empty()) fail("cgroup v1 manager without hierarchies");
}

void V1Manager::create() {
  size_t done = 0;
  try {
    for (; done < dirs_.size(); ++done) {
      auto& d = dirs_[done];
      d.create(d.hierarchy().has("cpuset") ? CgroupDir::PrepareHook(fill_cpuset) : CgroupDir::PrepareHook());
    }
  } catch (...) {
    while (done-- > 0) {
      try {
        dirs_[done].remove();
      } catch (const Error&) {  // keep the original error
      }
    }
    throw;
  }
}

void V1Manager::enter_self(bool) {
  for (const auto& tasks : tasks_files_) write_raw(tasks.c_str(), "0");
}

void V1Manager::add_process(pid_t pid) {
  auto text = std::to_string(pid);
  for (const auto& d : dirs_) d.write("cgroup.procs", text);
}

const CgroupDir* V1Manager::find(std::string_view controller) const {
  for (const auto& d : dirs_)
    if (d.hierarchy().has(controller)) return &d;
  return nullptr;
}

const CgroupDir& V1Manager::freezer() const {
  if (auto* d = find("freezer")) return *d;
  fail("cgroup {} cannot be frozen: no freezer hierarchy is mounted", dirs_.front().placement().path);
}

const CgroupDir& V1Manager::primary() const {
  for (auto c : {"freezer", "pids", "devices", "memory"})
    if (auto* d = find(c)) return *d;
  return dirs_.front();
}

void V1Manager::freeze() {
  const auto& f = freezer();
  refuse_if_holding_us(f.procs());
  f.verify_on_disk();
  const auto deadline = Clock::now() + kFreezeTimeout;
  auto backoff = std::chrono::microseconds(100);
  for (;;) {
    // Writing FROZEN again while FREEZING retries the tasks that have not stopped yet (and any
    // forked meanwhile); the v1 freezer has no completion notification, hence the short backoff.
    f.write("freezer.state", "FROZEN");
    auto state = parse_freezer_state(f.read("freezer.state"), f.file("freezer.state"));
    if (state == FreezerState::frozen) return;
    if (Clock::now() >= deadline) {
      f.write("freezer.state", "THAWED");
      fail("timed out waiting for freezer cgroup {} to freeze", f.dir());
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::microseconds>(backoff * 2, 10ms);
  }
}

void V1Manager::thaw() {
  if (auto* f = find("freezer")) f->write_checked("freezer.state", "THAWED");
}

FreezerState V1Manager::freezer_state() const {
  auto* f = find("freezer");
  if (!f) return FreezerState::thawed;
  return parse_freezer_state(f->read("freezer.state"), f->file("freezer.state"));
}

std::vector<pid_t> V1Manager::pids() const { return primary().procs(); }

void V1Manager::kill_all(int signal) { signal_each_frozen(signal); }

void V1Manager::wait_empty(std::chrono::milliseconds timeout) {
  if (!wait_pids_gone([this] { return pids(); }, Clock::now() + timeout))
    fail("timed out waiting for cgroup {} to become empty", primary().dir());
}

bool V1Manager::empty() const { return pids().empty(); }

void V1Manager::destroy() {
  std::exception_ptr first;
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    try {
      it->remove();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

std::string V1Manager::path(const std::string& controller) const {
  if (controller.empty()) return {};
  auto* d = find(controller);
  return d ? d->dir() : std::string();
}

std::vector<Placement> V1Manager::placements() const {
  std::vector<Placement> out;
  for (const auto& d : dirs_) out.push_back(d.placement());
  return out;
}

}  // namespace deltabox::cgroups
