// deltabox: a runc-compatible OCI runtime. argv → command → library call.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cli/command.hpp"
#include "linux/seccomp.hpp"
#include "process/sealed_exe.hpp"
#include "util/error.hpp"
#include "util/log.hpp"
#include "version.hpp"

using namespace deltabox;
using namespace deltabox::cli;

namespace {

const std::vector<FlagSpec>& global_flags() {
  static const std::vector<FlagSpec> flags = {
      {"debug", "", FlagKind::boolean, "", "", "enable debug logging"},
      {"log", "", FlagKind::string, "value", "", "set the log file to write deltabox logs to (default is '/dev/stderr')"},
      {"log-format", "", FlagKind::string, "value", "text", "set the log format ('text' (default), or 'json')"},
      {"root", "", FlagKind::string, "value", "", "root directory for storage of container state (this should be located in tmpfs)"},
      {"criu", "", FlagKind::string, "value", "criu", "path to the criu binary used for checkpoint, restore and snapshots"},
      {"store", "", FlagKind::string, "value", "", "directory of the snapshot layer store (default $DELTABOX_STORE or /var/lib/deltabox); a loop-backed btrfs is made there when it is not btrfs"},
      {"systemd-cgroup", "", FlagKind::boolean, "", "", "enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\" for e.g. \"system.slice:runc:434234\""},
      {"rootless", "", FlagKind::string, "value", "auto", "ignore cgroup permission errors ('true', 'false', or 'auto')"},
      {"help", "h", FlagKind::boolean, "", "", "show help"},
      {"version", "v", FlagKind::boolean, "", "", "print the version"},
  };
  return flags;
}

std::string default_root() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (::geteuid() != 0 && xdg && *xdg) return std::string(xdg) + "/deltabox";
  return "/run/deltabox";
}

std::string default_store(const std::string& flag) {
  if (!flag.empty()) return absolute_path(flag);
  const char* env = std::getenv("DELTABOX_STORE");
  return env && *env ? absolute_path(env) : std::string("/var/lib/deltabox");
}

bool decide_rootless(const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  if (value == "auto") return ::geteuid() != 0;
  throw UsageError("invalid --rootless value: " + value);
}

void print_version() {
  std::printf("deltabox version %s\ncommit: %s\nspec: %s\nlibseccomp: %s\n", DELTABOX_VERSION,
              DELTABOX_COMMIT, oci::kSpecVersion, libseccomp_version().c_str());
}

void print_main_help(const std::vector<Command>& commands) {
  std::string text =
      "NAME:\n   deltabox - Open Container Initiative runtime with millisecond snapshot and rollback\n\n"
      "USAGE:\n   deltabox [global options] command [command options] [arguments...]\n\n"
      "VERSION:\n   " DELTABOX_VERSION "\n\nCOMMANDS:\n";
  for (const auto& c : commands)
    if (!c.hidden) text += fmt::format("   {:<12}{}\n", c.name, c.description);
  text += "\nGLOBAL OPTIONS:\n" + format_flag_help(global_flags());
  std::fputs(text.c_str(), stdout);
}

void print_command_help(const Command& c) {
  std::string text = fmt::format("NAME:\n   deltabox {} - {}\n\nUSAGE:\n   deltabox {} {}\n", c.name,
                                 c.description, c.name, c.usage);
  if (!c.flags.empty()) text += "\nOPTIONS:\n" + format_flag_help(c.flags);
  std::fputs(text.c_str(), stdout);
}

void check_arg_count(const Command& c, size_t n) {
  if (c.exact_args && static_cast<int>(n) != c.min_args)
    throw Error(fmt::format("deltabox: \"{}\" requires exactly {} argument(s)", c.name, c.min_args));
  if (static_cast<int>(n) < c.min_args)
    throw Error(fmt::format("deltabox: \"{}\" requires a minimum of {} argument(s)", c.name, c.min_args));
  if (c.max_args >= 0 && static_cast<int>(n) > c.max_args)
    throw Error(fmt::format("deltabox: \"{}\" requires a maximum of {} argument(s)", c.name, c.max_args));
}

// Verbs that fork processes into a container's namespaces run from a sealed copy of the binary.
bool enters_container(const std::string& verb) {
  return verb == "create" || verb == "run" || verb == "exec" || verb == "restore";
}

int run_command(const Command& command, const GlobalOptions& global, std::span<const std::string> args) {
  ParsedFlags flags;
  try {
    // runc moves flags given after the container id to the front, except where the trailing
    // arguments belong to another program (exec's command, ps's options).
    const bool reorder = command.name != "exec" && command.name != "ps";
    flags = parse_flags(command.flags, args, reorder ? ArgOrder::reorder : ArgOrder::flags_first);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "Incorrect Usage: %s\n\n", e.what());
    print_command_help(command);
    return 1;
  }
  if (flags.help_requested) {
    print_command_help(command);
    return 0;
  }
  check_arg_count(command, flags.positional.size());
  return command.run(global, flags);
}

int main_checked(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ParsedFlags parsed;
  try {
    parsed = parse_flags(global_flags(), args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "Incorrect Usage: %s\n", e.what());
    return 1;
  }
  if (!parsed.positional.empty() && enters_container(parsed.positional.front())) ensure_sealed_executable(argv);
  log::configure(parsed.get_string("log"), log::parse_format(parsed.get_string("log-format")),
                 parsed.get_bool("debug"));
  const auto commands = all_commands();
  if (parsed.get_bool("version")) {
    print_version();
    return 0;
  }
  if (parsed.positional.empty() || parsed.help_requested) {
    print_main_help(commands);
    return 0;
  }
  GlobalOptions global;
  global.root = parsed.has("root") ? absolute_path(parsed.get_string("root")) : default_root();
  global.systemd_cgroup = parsed.get_bool("systemd-cgroup");
  global.rootless = decide_rootless(parsed.get_string("rootless"));
  global.criu = parsed.get_string("criu");
  global.criu_set = parsed.has("criu");
  global.store = default_store(parsed.get_string("store"));
  global.debug = parsed.get_bool("debug");

  const std::string& name = parsed.positional.front();
  if (name == "help") {
    print_main_help(commands);
    return 0;
  }
  for (const auto& c : commands)
    if (c.name == name)
      return run_command(c, global, std::span<const std::string>(parsed.positional).subspan(1));
  std::fprintf(stderr, "No help topic for '%s'\n", name.c_str());
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return main_checked(argc, argv);
  } catch (const std::exception& e) {
    log::fatal(e.what());
    return 1;
  }
}
