#include "container/generation.hpp"

namespace deltabox {

GenerationPaths generation_paths(const std::filesystem::path& dir, const std::string& generation) {
  GenerationPaths p;
  p.layer = dir / "gens" / generation;
  p.upper = p.layer / "upper";
  p.work = p.layer / "work";
  p.merged = dir / "mnt" / generation;
  p.cgroup_leaf = "gen-" + generation;
  return p;
}

std::filesystem::path container_store_dir(const std::filesystem::path& store, const std::string& id) {
  return store / "containers" / id;
}

std::unique_ptr<cgroups::Manager> leaf_cgroup(const cgroups::Manager& container, const std::string& leaf,
                                              bool existing) {
  auto placements = container.placements();
  for (auto& p : placements) {
    p.path += "/" + leaf;
    p.dir += "/" + leaf;
    p.created.clear();
    if (existing) p.created.push_back(p.dir);
  }
  return cgroups::make_manager(std::move(placements));
}

}  // namespace deltabox
