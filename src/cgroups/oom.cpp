#include "cgroups/oom.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cgroups/controllers.hpp"
#include "cgroups/manager.hpp"
#include "cgroups/wait.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/file.hpp"

namespace deltabox::cgroups {
namespace {

class V1OomEvents final : public OomEvents {
 public:
  explicit V1OomEvents(const CgroupDir& memory) : event_control_(memory.file("cgroup.event_control")) {
    UniqueFd oom_control(::open(memory.file("memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC));
    if (!oom_control) throw_errno(fmt::format("open {}", memory.file("memory.oom_control")));
    eventfd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!eventfd_) throw_errno("eventfd");
    // The kernel keeps its own references: oom_control can be closed once registered.
    write_raw(event_control_.c_str(), fmt::format("{} {}", eventfd_.get(), oom_control.get()));
  }

  int fd() const override { return eventfd_.get(); }

  uint64_t consume() override {
    uint64_t count = 0;
    if (::read(eventfd_.get(), &count, sizeof count) != sizeof count) {
      if (errno == EAGAIN) return 0;
      throw_errno("read OOM eventfd");
    }
    // The same eventfd fires when the cgroup is removed: that is the end, not an OOM.
    if (::access(event_control_.c_str(), F_OK) != 0) {
      done_ = true;
      return 0;
    }
    return count;
  }

  bool done() const override { return done_; }

 private:
  std::string event_control_;
  UniqueFd eventfd_;
  bool done_ = false;
};

class V2OomEvents final : public OomEvents {
 public:
  explicit V2OomEvents(const CgroupDir& dir)
      : memory_events_(dir.file("memory.events")), cgroup_events_(dir.file("cgroup.events")) {
    inotify_.reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!inotify_) throw_errno("inotify_init1");
    for (const auto& path : {memory_events_, cgroup_events_})
      if (::inotify_add_watch(inotify_.get(), path.c_str(), IN_MODIFY) < 0)
        throw_errno(fmt::format("inotify_add_watch {}", path));
    kills_ = oom_kills().value_or(0);
  }

  int fd() const override { return inotify_.get(); }

  uint64_t consume() override {
    char buf[4096];
    while (::read(inotify_.get(), buf, sizeof buf) > 0) {
    }
    const auto kills = oom_kills();
    uint64_t fresh = 0;
    if (kills && *kills > kills_) fresh = *kills - kills_;
    if (kills) kills_ = *kills;
    std::optional<std::string> populated;
    try {
      populated = events_field(read_file(cgroup_events_), "populated");
    } catch (const Error& e) {
      if (e.code() != ENOENT && e.code() != ENODEV) throw;
    }
    done_ = !kills || populated.value_or("0") == "0";
    return fresh;
  }

  bool done() const override { return done_; }

 private:
  // nullopt once the cgroup is gone.
  std::optional<uint64_t> oom_kills() const {
    try {
      auto value = events_field(read_file(memory_events_), "oom_kill");
      return value ? std::stoull(*value) : 0;
    } catch (const Error& e) {
      if (e.code() == ENOENT || e.code() == ENODEV) return std::nullopt;
      throw;
    }
  }

  std::string memory_events_;
  std::string cgroup_events_;
  UniqueFd inotify_;
  uint64_t kills_ = 0;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<OomEvents> watch_oom(const ControllerMap& controllers) {
  if (const auto* memory = controllers.v1("memory")) return std::make_unique<V1OomEvents>(*memory);
  const auto* unified = controllers.unified();
  if (unified && unified->has("memory.events")) return std::make_unique<V2OomEvents>(*unified);
  fail("cannot watch for OOM events: the container has no memory cgroup");
}

std::unique_ptr<OomEvents> Manager::oom_events() const { return watch_oom(ControllerMap(placements())); }

}  // namespace deltabox::cgroups
