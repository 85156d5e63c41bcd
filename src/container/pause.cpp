// `pause` and `resume`: the freezer on the container's cgroup.
#include "container/container.hpp"
#include "util/error.hpp"

namespace deltabox {

void Container::pause() {
  auto status = this->status();
  if (status != oci::Status::running && status != oci::Status::created) fail("container not running");
  auto cgroups = this->cgroups();
  if (!cgroups->can_freeze()) fail("cannot pause a container without a freezer cgroup");
  cgroups->freeze();
}

void Container::resume() {
  if (status() != oci::Status::paused) fail("container not paused");
  cgroups()->thaw();
}

}  // namespace deltabox
