#include "cli/command.hpp"

#include <unistd.h>

#include <filesystem>

namespace deltabox::cli {

std::vector<Command> all_commands() {
  std::vector<Command> out;
  add_lifecycle_commands(out);
  add_exec_command(out);
  add_query_commands(out);
  add_resource_commands(out);
  add_checkpoint_commands(out);
  add_snapshot_commands(out);
  add_spec_commands(out);
  return out;
}

StateStore open_store(const GlobalOptions& global) { return StateStore(global.root); }

std::string absolute_path(const std::string& path) {
  if (path.empty()) return path;
  return std::filesystem::absolute(path).lexically_normal().string();
}

}  // namespace deltabox::cli
