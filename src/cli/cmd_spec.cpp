// spec, features.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <oci/config.hpp>

#include "cli/command.hpp"
#include "container/features.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::cli {

namespace {

int spec_command(const GlobalOptions&, const ParsedFlags& flags) {
  std::filesystem::path bundle = flags.get_string("bundle");
  if (bundle.empty()) bundle = ".";
  auto path = bundle / "config.json";
  if (::access(path.c_str(), F_OK) == 0) fail("File config.json exists. Remove it first");
  const bool rootless = flags.get_bool("rootless");
  auto config = oci::default_config(rootless, ::getuid(), ::getgid());
  // runc writes tab-indented JSON.
  write_file_atomic(path, oci::to_json(config).dump(1, '\t'), 0666, Durability::survive_process_crash);
  return 0;
}

int features_command(const GlobalOptions&, const ParsedFlags&) {
  // The two required versions lead, as in runc's output; the rest follows in key order.
  auto json = oci::to_json(runtime_features());
  nlohmann::ordered_json out;
  out["ociVersionMin"] = json["ociVersionMin"];
  out["ociVersionMax"] = json["ociVersionMax"];
  for (const auto& [key, value] : json.items())
    if (!out.contains(key)) out[key] = value;
  std::printf("%s\n", out.dump(4).c_str());
  return 0;
}

}  // namespace

void add_spec_commands(std::vector<Command>& out) {
  out.push_back({"spec", "[command options]", "create a new specification file",
                 {{"bundle", "b", FlagKind::string, "value", "", "path to the root of the bundle directory"},
                  {"rootless", "", FlagKind::boolean, "", "", "generate a configuration for a rootless container"}},
                 0, 0, true, spec_command});
  out.push_back({"features", "", "show the enabled features", {}, 0, 0, true, features_command});
}

}  // namespace deltabox::cli
