#pragma once
// cgroup v1: one directory per mounted hierarchy; freezing through the freezer hierarchy.
#include "cgroups/cgroup_dir.hpp"
#include "cgroups/manager.hpp"

namespace deltabox::cgroups {

class V1Manager final : public Manager {
 public:
  explicit V1Manager(std::vector<Placement> placements);

  void create() override;
  int unified_dir_fd() const override { return -1; }
  void enter_self(bool v2_already_joined = false) override;
  void add_process(pid_t pid) override;
  void freeze() override;
  void thaw() override;
  FreezerState freezer_state() const override;
  std::vector<pid_t> pids() const override;
  void kill_all(int signal) override;
  void wait_empty(std::chrono::milliseconds timeout) override;
  bool empty() const override;
  void destroy() override;
  std::string path(const std::string& controller) const override;
  Layout layout() const override { return Layout::v1; }
  std::vector<Placement> placements() const override;
  bool can_freeze() const override { return find("freezer") != nullptr; }

 private:
  const CgroupDir* find(std::string_view controller) const;
  const CgroupDir& freezer() const;
  // Where pids() looks: every container process is in every hierarchy, so any one will do; the
  // freezer's is the one freeze() acts on.
  const CgroupDir& primary() const;

  std::vector<CgroupDir> dirs_;
  std::vector<std::string> tasks_files_;  // precomputed so enter_self() does not allocate
};

}  // namespace deltabox::cgroups
