#include "cgroups/hierarchy.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace deltabox::cgroups {

std::string Hierarchy::name() const { return unified() ? "cgroup2" : fmt::format("{}", fmt::join(controllers, ",")); }

bool Hierarchy::has(std::string_view controller) const {
  for (const auto& c : controllers) {
    if (c == controller) return true;
    // Named hierarchies ("name=systemd") are also found by their bare name.
    if (c.size() == controller.size() + 5 && c.starts_with("name=") && c.ends_with(controller)) return true;
  }
  return false;
}

}  // namespace deltabox::cgroups
