#include "container/bundle.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "container/validate.hpp"
#include "util/error.hpp"

namespace deltabox {

oci::Config load_bundle_config(const std::filesystem::path& bundle) {
  oci::Config config;
  if (::access((bundle / "config.json").c_str(), F_OK) < 0) {
    if (::access(bundle.c_str(), F_OK) < 0) throw_errno(fmt::format("chdir {}", bundle.string()));
    fail("JSON specification file config.json not found");
  }
  try {
    config = oci::load_config(bundle / "config.json");
  } catch (const oci::SpecError& e) {
    fail("invalid config.json: {}", e.what());
  }
  if (!config.process) fail("process property must not be empty");
  if (!config.root || config.root->path.empty()) fail("root.path must not be empty");
  if (!config.linux) config.linux.emplace();
  validate_for_create(config);
  return config;
}

std::filesystem::path rootfs_of(const oci::Config& config, const std::filesystem::path& bundle) {
  std::filesystem::path root = config.root->path;
  if (root.is_relative()) root = bundle / root;
  root = root.lexically_normal();
  if (!root.has_filename()) root = root.parent_path();
  struct stat st {};
  if (::stat(root.c_str(), &st) < 0) throw_errno(fmt::format("invalid rootfs: stat {}", root.string()));
  std::error_code ec;
  if (std::filesystem::canonical(root, ec) != root || !S_ISDIR(st.st_mode))
    fail("invalid rootfs: not an absolute path, or a symlink");
  return root;
}

bool is_bind_mount(const oci::Mount& m) {
  if (m.type && *m.type == "bind") return true;
  for (const auto& o : m.options)
    if (o == "bind" || o == "rbind") return true;
  return false;
}

}  // namespace deltabox
