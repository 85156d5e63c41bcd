#pragma once
// OOM-kill notifications for `events`, as one pollable descriptor the verb can poll together with
// its stats timer:
//   v1: an eventfd registered on memory.oom_control through cgroup.event_control; the kernel
//       signals it on every OOM in the cgroup, and once more when the cgroup is removed.
//   v2: inotify on memory.events (its "oom_kill" counter) and cgroup.events ("populated 0" means
//       the container is gone).
//
//   auto oom = manager.oom_events();
//   poll({oom->fd(), POLLIN} + timer) ... if readable: for (n = oom->consume(); n--;) emit "oom";
//   stop once oom->done().
#include <cstdint>
#include <memory>
#include <string>

namespace deltabox::cgroups {

class ControllerMap;

class OomEvents {
 public:
  virtual ~OomEvents() = default;
  // Becomes readable (POLLIN) when an OOM kill may have happened or the cgroup went away.
  virtual int fd() const = 0;
  // OOM kills since the previous call (0 for an unrelated wake-up); drains fd(). Never blocks.
  virtual uint64_t consume() = 0;
  // No more events can come: the cgroup was removed (v1) or has no process left (v2).
  virtual bool done() const = 0;
};

// For the container's memory controller, wherever it lives; throws when there is none.
std::unique_ptr<OomEvents> watch_oom(const ControllerMap& controllers);

}  // namespace deltabox::cgroups
