// `start`: let a created container's init exec the user's process.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "container/container.hpp"
#include "process/hooks.hpp"
#include "util/error.hpp"

namespace deltabox {

void Container::start() {
  switch (status()) {
    case oci::Status::created:
      break;
    case oci::Status::stopped:
      fail("cannot start a container that has stopped");
    default:
      fail("cannot start an already running container");
  }
  auto fifo = start_fifo();
  // Non-blocking: with no reader left (the init died meanwhile) this fails with ENXIO.
  UniqueFd fd(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENXIO || errno == ENOENT) fail("cannot start a container that has stopped");
    throw_errno(fmt::format("open {}", fifo.string()));
  }
  if (::write(fd.get(), "0", 1) != 1) throw_errno("signal the container to start");
  ::unlink(fifo.c_str());
  // The init holds the fifo until its execve: with no events requested, poll wakes on POLLERR
  // once no reader is left, i.e. when the user's process runs (or the init died).
  pollfd pfd{fd.get(), 0, 0};
  while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
  }
  auto config = state_.parsed_config();
  if (config.hooks)
    run_hooks_warn_only(config.hooks->poststart,
                        {state_.id, oci::Status::running, state_.init_pid, state_.bundle.string(), config.annotations},
                        "poststart");
}

}  // namespace deltabox
