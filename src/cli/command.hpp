#pragma once
// The CLI is a table of commands, each mapping its flags onto one library call. Nothing here
// knows how a container works; it only translates argv and prints results.
#include <functional>
#include <string>
#include <vector>

#include "cli/flags.hpp"
#include "state/store.hpp"

namespace deltabox::cli {

struct GlobalOptions {
  std::string root;
  bool systemd_cgroup = false;
  bool rootless = false;
  std::string criu;   // path of the criu binary
  bool criu_set = false;  // --criu given: snapshot verbs use it instead of the one create recorded
  std::string store;  // the snapshot layer store
  bool debug = false;
};

struct Command {
  std::string name;
  std::string usage;        // "[command options] <container-id>"
  std::string description;  // one line
  std::vector<FlagSpec> flags;
  int min_args = 0;
  int max_args = -1;        // -1: unlimited
  bool exact_args = false;  // runc's "requires exactly N argument(s)"
  std::function<int(const GlobalOptions&, const ParsedFlags&)> run;
  bool hidden = false;
};

// Every command, in the order `deltabox --help` lists them.
std::vector<Command> all_commands();

// Registration per file, so each verb's CLI glue sits next to its siblings.
void add_lifecycle_commands(std::vector<Command>& out);  // create, start, run, delete, kill
void add_exec_command(std::vector<Command>& out);
void add_query_commands(std::vector<Command>& out);      // state, list, ps
void add_spec_commands(std::vector<Command>& out);       // spec, features
void add_resource_commands(std::vector<Command>& out);   // pause, resume, update, events
void add_snapshot_commands(std::vector<Command>& out);
void add_checkpoint_commands(std::vector<Command>& out);  // checkpoint, restore   // snapshot, rollback, fork, snapshots

StateStore open_store(const GlobalOptions& global);
// runc resolves paths given on the command line against the caller's cwd.
std::string absolute_path(const std::string& path);

}  // namespace deltabox::cli
