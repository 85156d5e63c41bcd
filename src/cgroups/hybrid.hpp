#pragma once
// Hybrid: v1 hierarchies carry the controllers, the cgroup2 hierarchy (typically
// /sys/fs/cgroup/unified, no controllers) carries cgroup.freeze, cgroup.kill, cgroup.events and
// CLONE_INTO_CGROUP. Every container process joins both, so the cgroup2 side answers for
// membership and the v1 side is only the fallback for freezing on kernels without cgroup.freeze.
#include "cgroups/v1.hpp"
#include "cgroups/v2.hpp"

namespace deltabox::cgroups {

class HybridManager final : public Manager {
 public:
  HybridManager(std::vector<Placement> v1, Placement v2) : v1_(std::move(v1)), v2_(std::move(v2)) {}

  void create() override;
  int unified_dir_fd() const override { return v2_.unified_dir_fd(); }
  void enter_self(bool v2_already_joined = false) override;
  void add_process(pid_t pid) override;
  void freeze() override;
  void thaw() override;
  FreezerState freezer_state() const override;
  std::vector<pid_t> pids() const override { return v2_.pids(); }
  void kill_all(int signal) override;
  void wait_empty(std::chrono::milliseconds timeout) override { v2_.wait_empty(timeout); }
  bool empty() const override { return v2_.empty(); }
  void destroy() override;
  std::string path(const std::string& controller) const override;
  Layout layout() const override { return Layout::hybrid; }
  std::vector<Placement> placements() const override;
  bool can_freeze() const override { return v2_.can_freeze() || v1_.can_freeze(); }

 private:
  V1Manager v1_;
  V2Manager v2_;
};

}  // namespace deltabox::cgroups
