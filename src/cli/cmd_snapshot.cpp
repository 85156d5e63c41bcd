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
  SnapshotOptions options{flags.get_string("name"), flags.get_bool("async"), global.criu_set ? global.criu : ""};
  std::string id = container.snapshot(options);
  if (json_output(flags))
    std::printf("%s\n", nlohmann::json({{"id", id}, {"name", options.name}}).dump().c_str());
  else
    std::printf("%s\n", id.c_str());
  return 0;
}

int rollback_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  Container::load(store, flags.positional.at(0)).rollback(flags.positional.at(1), global.criu_set ? global.criu : "");
  return 0;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

nlohmann::ordered_json snapshot_json(const SnapshotInfo& info) {
  nlohmann::ordered_json j;
  j["id"] = info.meta.id;
  j["name"] = info.meta.name;
  j["parent"] = info.meta.parent;
  j["created"] = info.meta.created;
  j["class"] = snapshot_class_name(info.meta.snapshot_class);
  j["reason"] = info.meta.reason;
  j["template"] = info.template_ready;
  j["head"] = info.head;
  j["bytes"] = info.fs_bytes + info.image_bytes;
  j["fs_bytes"] = info.fs_bytes;
  j["image_bytes"] = info.image_bytes;
  j["layers"] = info.meta.layers.size();
  return j;
}

// `snapshots <id>` lists; `snapshots rm <id> <snapshot>...` removes.
int snapshots_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  const auto& args = flags.positional;
  if (args.size() >= 3 && args[0] == "rm") {
    Container::load(store, args[1]).remove_snapshots({args.begin() + 2, args.end()});
    return 0;
  }
  if (args.size() != 1) fail("usage: deltabox snapshots <container-id> | deltabox snapshots rm <container-id> <snapshot>...");
  auto infos = Container::peek(store, args[0]).list_snapshots();
  if (json_output(flags)) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& info : infos) out.push_back(snapshot_json(info));
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  TabWriter table;
  table.row({"ID", "NAME", "PARENT", "CREATED", "CLASS", "TEMPLATE", "BYTES", "REASON"});
  for (const auto& info : infos)
    table.row({info.meta.id + (info.head ? "*" : ""), info.meta.name, info.meta.parent, info.meta.created,
               snapshot_class_name(info.meta.snapshot_class), info.template_ready ? "ready" : "-",
               human_bytes(info.fs_bytes + info.image_bytes), info.meta.reason});
  std::fputs(table.render().c_str(), stdout);
  return 0;
}

int fork_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  const auto& args = flags.positional;
  CreateOptions base;
  base.systemd_cgroup = global.systemd_cgroup;
  base.rootless = global.rootless;
  Container::load(store, args[0]).fork(args[1], {args.begin() + 2, args.end()}, base);
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
  out.push_back({"fork", "<container-id> <snapshot> <new-id>...",
                 "start new containers from a snapshot, each with its own id, cgroup, filesystem and namespaces", {}, 3,
                 -1, false, fork_command});
  out.push_back({"snapshots", "[command options] <container-id> | rm <container-id> <snapshot>...",
                 "list a container's snapshot tree (* marks the one the container runs from), or remove snapshots",
                 {{"format", "f", FlagKind::string, "value", "table", "output format: table or json"}}, 1, -1, false,
                 snapshots_command});
  Command helper{"helper", "<container-id>", "internal: the per-container background helper", {}, 1, 1, true,
                 helper_command};
  helper.hidden = true;
  out.push_back(helper);
}

}  // namespace deltabox::cli
