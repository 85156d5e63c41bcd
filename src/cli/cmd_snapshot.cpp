// snapshot, rollback, fork, snapshots: deltabox's own verbs.
#include <cstdio>

#include "cli/command.hpp"
#include "cli/table.hpp"
#include "container/container.hpp"
#include "container/helper.hpp"
#include "util/error.hpp"

namespace deltabox::cli {

namespace {

FlagSpec format_flag() {
  return {"format", "f", FlagKind::string, "value", "text", "output format: text or json"};
}

bool json_output(const ParsedFlags& flags) {
  auto format = flags.get_string("format");
  if (format != "text" && format != "table" && format != "json") fail("invalid format option");
  return format == "json";
}

int snapshot_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  auto container = Container::load(store, flags.positional.at(0));
  SnapshotOptions options{flags.get_string("name"), flags.get_bool("async"), global.criu};
  std::string id = container.snapshot(options);
  if (json_output(flags))
    std::printf("%s\n", nlohmann::json({{"id", id}, {"name", options.name}}).dump().c_str());
  else
    std::printf("%s\n", id.c_str());
  return 0;
}

int rollback_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  Container::load(store, flags.positional.at(0)).rollback(flags.positional.at(1), global.criu);
  return 0;
}

int helper_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  return run_helper(store, flags.positional.at(0), 3);
}

}  // namespace

void add_snapshot_commands(std::vector<Command>& out) {
  out.push_back({"snapshot", "[command options] <container-id>",
                 "capture the running container (files and processes) as a new snapshot; prints its id",
                 {{"name", "", FlagKind::string, "value", "", "a name for the snapshot (unique in the container)"},
                  {"async", "", FlagKind::boolean, "", "", "return once the container is frozen and its files captured; the process dump finishes in the background"},
                  format_flag()},
                 1, 1, true, snapshot_command});
  out.push_back({"rollback", "<container-id> <snapshot>",
                 "make the container exactly what it was at a snapshot (files, processes, memory)", {}, 2, 2, true,
                 rollback_command});
  Command helper{"helper", "<container-id>", "internal: the per-container background helper", {}, 1, 1, true,
                 helper_command};
  helper.hidden = true;
  out.push_back(helper);
}

}  // namespace deltabox::cli
