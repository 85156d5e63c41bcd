#include "cgroups/paths.hpp"

#include "util/error.hpp"

namespace deltabox::cgroups {
namespace {

std::string join_components(const std::vector<std::string_view>& components) {
  std::string out;
  for (auto c : components) {
    out += '/';
    out += c;
  }
  return out.empty() ? "/" : out;
}

// path relative to an ancestor ("" when equal); both normalized, ancestor known to contain path.
std::string_view relative_to(std::string_view path, std::string_view ancestor) {
  if (ancestor == "/") return path.substr(1);
  path.remove_prefix(ancestor.size());
  if (!path.empty()) path.remove_prefix(1);
  return path;
}

void check_id(const std::string& id) {
  if (id.empty() || id == "." || id == ".." || id.find('/') != std::string::npos ||
      id.find('\0') != std::string::npos)
    fail("container id {:?} cannot name a cgroup", id);
}

bool is_normalized_absolute(const std::string& path) {
  try {
    return !path.empty() && path[0] == '/' && normalize_cgroup_path(path) == path;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

std::string normalize_cgroup_path(std::string_view path) {
  if (path.find('\0') != std::string_view::npos) fail("cgroup path {:?} contains a NUL byte", path);
  std::vector<std::string_view> components;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    auto c = path.substr(pos, end - pos);
    if (c == "..") fail("cgroup path {:?}: \"..\" components are not allowed", path);
    if (!c.empty() && c != ".") components.push_back(c);
    pos = end + 1;
  }
  return join_components(components);
}

bool is_at_or_below(std::string_view path, std::string_view ancestor) {
  if (ancestor == "/") return !path.empty() && path[0] == '/';
  return path == ancestor || (path.starts_with(ancestor) && path.size() > ancestor.size() &&
                              path[ancestor.size()] == '/');
}

bool is_strictly_below(std::string_view path, std::string_view ancestor) {
  return path != ancestor && is_at_or_below(path, ancestor);
}

std::string resolve_container_path(const std::string& own_path, const std::string& cgroups_path,
                                   const std::string& id) {
  if (cgroups_path.empty()) {
    check_id(id);
    return normalize_cgroup_path(own_path + "/" + id);
  }
  if (cgroups_path[0] == '/') return normalize_cgroup_path(cgroups_path);
  // Normalize the relative part on its own first so a ".." in it is reported as the user wrote it.
  return normalize_cgroup_path(own_path + normalize_cgroup_path(cgroups_path));
}

std::string cgroup_dir(const Hierarchy& hierarchy, const std::string& path) {
  if (!is_normalized_absolute(hierarchy.mount_point))
    fail("mount point {:?} of the {} hierarchy is not a normalized absolute path", hierarchy.mount_point,
         hierarchy.name());
  if (!is_normalized_absolute(hierarchy.mount_root))
    fail("mount root {:?} of the {} hierarchy is not a normalized absolute path", hierarchy.mount_root,
         hierarchy.name());
  if (!is_normalized_absolute(path)) fail("cgroup path {:?} is not a normalized absolute path", path);
  if (path == "/") fail("cgroup path {:?} is the root of the {} hierarchy: refused", path, hierarchy.name());
  if (path == hierarchy.mount_root)
    fail("cgroup path {:?} is the root of the {} hierarchy's mount at {}: refused", path, hierarchy.name(),
         hierarchy.mount_point);
  if (!is_strictly_below(path, hierarchy.mount_root))
    fail("cgroup path {:?} is outside the {} hierarchy's mount at {} (which shows only {})", path,
         hierarchy.name(), hierarchy.mount_point, hierarchy.mount_root);
  auto rel = relative_to(path, hierarchy.mount_root);
  return hierarchy.mount_point == "/" ? fmt::format("/{}", rel) : fmt::format("{}/{}", hierarchy.mount_point, rel);
}

std::vector<Placement> plan_placements(const std::vector<OwnHierarchy>& hierarchies,
                                       const std::string& cgroups_path, const std::string& id) {
  if (hierarchies.empty()) fail("no cgroup hierarchy is mounted");
  std::vector<Placement> out;
  for (const auto& h : hierarchies) {
    const std::string own = normalize_cgroup_path(h.own_path);
    Placement p;
    p.hierarchy = h.hierarchy;
    p.path = resolve_container_path(own, cgroups_path, id);
    p.dir = cgroup_dir(p.hierarchy, p.path);
    if (is_at_or_below(own, p.path))
      fail("cgroup path {:?} of the {} hierarchy contains the runtime's own cgroup {:?}: refused (killing "
           "the container would kill the runtime)",
           p.path, h.hierarchy.name(), own);
    out.push_back(std::move(p));
  }
  return out;
}

void validate_placement(const Placement& p) {
  if (cgroup_dir(p.hierarchy, p.path) != p.dir)
    fail("cgroup directory {:?} does not match cgroup {:?} of the {} hierarchy mounted at {}", p.dir, p.path,
         p.hierarchy.name(), p.hierarchy.mount_point);
  for (const auto& c : p.created) {
    if (!is_normalized_absolute(c) || !is_strictly_below(c, p.hierarchy.mount_point) || !is_at_or_below(p.dir, c))
      fail("created cgroup directory {:?} is not between the mount {} and {}: refused", c,
           p.hierarchy.mount_point, p.dir);
  }
}

}  // namespace deltabox::cgroups
