// `update`: change a running container's resource limits; the state keeps the merged result.
#include "container/container.hpp"
#include "util/error.hpp"

namespace deltabox {

void Container::update(const oci::Resources& changes) {
  if (status() == oci::Status::stopped) fail("container not running");
  oci::Config config = state_.parsed_config();
  if (!config.linux) config.linux.emplace();
  oci::Resources current = config.linux->resources.value_or(oci::Resources{});
  config.linux->resources = cgroups()->update(current, changes);
  state_.config = oci::to_json(config);
  store_->save(state_.id, state_.to_json());
}

nlohmann::ordered_json Container::stats() const { return cgroups()->stats_json(); }

std::unique_ptr<cgroups::OomEvents> Container::oom_events() const { return cgroups()->oom_events(); }

}  // namespace deltabox
