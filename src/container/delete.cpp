// `delete`: remove a stopped container; with force, kill a running one first.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/helper.hpp"
#include "delta/store.hpp"
#include "process/hooks.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

void Container::remove_everything(cgroups::Manager& cgroups) {
  if (state_.snapshots) stop_helper(*store_, state_.id);
  cgroups.destroy();
  if (state_.snapshots) {
    // Layers, snapshots and images go with the container: forks hold their own copies.
    auto layers = delta::LayerStore::open(state_.snapshots->store);
    layers.remove(container_store_dir(layers.root(), state_.id));
  }
  store_->remove_dir(state_.id);
  auto config = state_.parsed_config();
  if (config.hooks)
    run_hooks_warn_only(config.hooks->poststop,
                        {state_.id, oci::Status::stopped, 0, state_.bundle.string(), config.annotations}, "poststop");
}

namespace {

// A killed task leaves its cgroup before it has finished exiting: the caller of delete -f must
// not see it alive afterwards. pidfds taken before the kill cannot name a reused pid.
std::vector<UniqueFd> pidfds_of(const std::vector<pid_t>& pids) {
  std::vector<UniqueFd> out;
  for (pid_t pid : pids)
    if (UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); fd) out.push_back(std::move(fd));
  return out;
}

void wait_exited(const std::vector<UniqueFd>& pidfds, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (const auto& fd : pidfds) {
    pollfd p{fd.get(), POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    while (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace

void Container::destroy(bool force) {
  auto status = this->status();
  auto cgroups = this->cgroups();
  if (status != oci::Status::stopped) {
    // A created container is not running anything of the user's yet: runc deletes it unasked.
    if (status != oci::Status::created && !force)
      fail("cannot delete container {} that is not stopped: {}", state_.id, oci::status_name(status));
    auto pidfds = pidfds_of(cgroups->pids());
    cgroups->kill_all(SIGKILL);
    if (status == oci::Status::paused) cgroups->thaw();
    cgroups->wait_empty(std::chrono::seconds(10));
    wait_exited(pidfds, std::chrono::seconds(10));
  } else if (!cgroups->empty()) {
    // The init is gone but, without a pid namespace of its own, its children are not.
    cgroups->kill_all(SIGKILL);
    cgroups->wait_empty(std::chrono::seconds(10));
  }
  remove_everything(*cgroups);
}

}  // namespace deltabox
