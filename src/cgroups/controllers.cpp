#include "cgroups/controllers.hpp"

#include <algorithm>
#include <sstream>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::cgroups {
namespace {

bool listed(const std::string& dir, const std::string& controller) {
  auto names = unified_controllers(dir);
  return std::find(names.begin(), names.end(), controller) != names.end();
}

}  // namespace

std::vector<std::string> unified_controllers(const std::string& dir) {
  std::vector<std::string> out;
  std::string text;
  try {
    text = read_file(dir + "/cgroup.controllers");
  } catch (const Error& e) {
    if (e.code() == ENOENT) return out;
    throw;
  }
  std::istringstream words(text);
  for (std::string w; words >> w;) out.push_back(w);
  return out;
}

bool enable_unified_controller(const CgroupDir& dir, const std::string& controller) {
  if (listed(dir.dir(), controller)) return true;
  std::vector<std::string> parents;  // the ones we created, shallowest first
  for (const auto& c : dir.placement().created)
    if (c != dir.dir()) parents.push_back(c);
  // The closest parent we did not create must already pass the controller down to our subtree.
  if (parents.empty() || !listed(parents.front(), controller)) return false;
  for (const auto& p : parents) {
    if (!dir.verify_on_disk(p)) return false;
    write_raw((p + "/cgroup.subtree_control").c_str(), "+" + controller);
  }
  return listed(dir.dir(), controller);
}

ControllerMap::ControllerMap(const std::vector<Placement>& placements) {
  for (const auto& p : placements) {
    if (p.hierarchy.unified())
      unified_.emplace(p);
    else
      v1_.emplace_back(p);
  }
}

Layout ControllerMap::layout() const {
  if (v1_.empty()) return Layout::v2;
  return unified_ ? Layout::hybrid : Layout::v1;
}

const CgroupDir* ControllerMap::v1(std::string_view controller) const {
  for (const auto& d : v1_)
    if (d.hierarchy().has(controller)) return &d;
  return nullptr;
}

ControllerFiles ControllerMap::for_writing(std::string_view v1_name, std::string_view v2_name) const {
  return resolve(v1_name, v2_name, true);
}

ControllerFiles ControllerMap::for_reading(std::string_view v1_name, std::string_view v2_name) const {
  return resolve(v1_name, v2_name, false);
}

ControllerFiles ControllerMap::resolve(std::string_view v1_name, std::string_view v2_name, bool enable) const {
  std::string name(v1_name);
  if (auto* d = v1(v1_name)) return {name, d};
  if (!unified_ || v2_name.empty()) return {name, nullptr};
  const CgroupDir* dir = &*unified_;
  std::string controller(v2_name);
  // Pure v2 writes regardless, as runc does: a controller that is not there fails with the
  // file's own "no such file or directory". On hybrid an unavailable one is simply absent.
  const bool pure = layout() == Layout::v2;
  if (!enable) return {name, pure || listed(dir->dir(), controller) ? dir : nullptr};
  return {name, dir, [dir, controller, pure] { return enable_unified_controller(*dir, controller) || pure; }};
}

}  // namespace deltabox::cgroups
