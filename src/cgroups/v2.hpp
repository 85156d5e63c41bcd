#pragma once
// cgroup v2: one directory in the unified hierarchy. Freeze, kill and emptiness are kernel
// features there (cgroup.freeze, cgroup.kill, cgroup.events) and are waited on with POLLPRI.
#include "cgroups/cgroup_dir.hpp"
#include "cgroups/manager.hpp"

namespace deltabox::cgroups {

class V2Manager final : public Manager {
 public:
  explicit V2Manager(Placement placement);

  void create() override { dir_.create(); }
  int unified_dir_fd() const override { return dir_.open_dir().release(); }
  void enter_self(bool v2_already_joined = false) override;
  void add_process(pid_t pid) override;
  void freeze() override;
  void thaw() override;
  FreezerState freezer_state() const override;
  std::vector<pid_t> pids() const override { return dir_.procs(); }
  void kill_all(int signal) override;
  void wait_empty(std::chrono::milliseconds timeout) override;
  bool empty() const override { return pids().empty(); }
  void destroy() override { dir_.remove(); }
  std::string path(const std::string& controller) const override;
  Layout layout() const override { return Layout::v2; }
  std::vector<Placement> placements() const override { return {dir_.placement()}; }
  // cgroup.freeze exists from Linux 5.2 on, cgroup.kill from 5.14 on.
  bool can_freeze() const override { return dir_.has("cgroup.freeze"); }
  bool can_kill() const { return dir_.has("cgroup.kill"); }

 private:
  CgroupDir dir_;
  std::string procs_file_;  // precomputed so enter_self() does not allocate
};

}  // namespace deltabox::cgroups
