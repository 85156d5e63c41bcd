// exec: runc's flags mapped onto a complete process description.
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "cli/command.hpp"
#include "container/container.hpp"
#include "linux/console.hpp"
#include "process/exec_launcher.hpp"
#include "process/foreground.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox::cli {

namespace {

std::vector<FlagSpec> exec_flags() {
  return {
      {"console-socket", "", FlagKind::string, "value", "", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
      {"cwd", "", FlagKind::string, "value", "", "current working directory in the container"},
      {"env", "e", FlagKind::string_list, "value", "", "set environment variables"},
      {"tty", "t", FlagKind::boolean, "", "", "allocate a pseudo-TTY"},
      {"user", "u", FlagKind::string, "value", "", "UID (format: <uid>[:<gid>])"},
      {"additional-gids", "g", FlagKind::string_list, "value", "", "additional gids"},
      {"process", "p", FlagKind::string, "value", "", "path to the process.json"},
      {"detach", "d", FlagKind::boolean, "", "", "detach from the container's process"},
      {"pid-file", "", FlagKind::string, "value", "", "specify the file to write the process id to"},
      {"process-label", "", FlagKind::string, "value", "", "set the asm process label for the process commonly used with selinux"},
      {"apparmor", "", FlagKind::string, "value", "", "set the apparmor profile for the process"},
      {"no-new-privs", "", FlagKind::boolean, "", "", "set the no new privileges value for the process"},
      {"cap", "c", FlagKind::string_list, "value", "", "add a capability to the bounding set for the process"},
      {"preserve-fds", "", FlagKind::uinteger, "value", "0", "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"},
      {"cgroup", "", FlagKind::string_list, "value", "", "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>."},
      {"ignore-paused", "", FlagKind::boolean, "", "", "allow exec in a paused container"},
  };
}

uint32_t parse_id(const std::string& text, const char* what) {
  try {
    size_t used = 0;
    unsigned long v = std::stoul(text, &used);
    if (used == text.size() && v <= UINT32_MAX) return static_cast<uint32_t>(v);
  } catch (const std::exception&) {
  }
  fail("parsing {} {}: invalid syntax", what, text);
}

void append_caps(std::optional<std::vector<std::string>>& set, const std::vector<std::string>& caps) {
  if (!set) set.emplace();
  set->insert(set->end(), caps.begin(), caps.end());
}

// Without -p, runc starts from the container's own process and applies the flags on top.
oci::Process process_from_flags(const Container& container, const ParsedFlags& flags) {
  oci::Process p = *container.state().parsed_config().process;
  p.args.assign(flags.positional.begin() + 1, flags.positional.end());
  if (flags.has("cwd")) p.cwd = flags.get_string("cwd");
  auto env = flags.get_list("env");
  p.env.insert(p.env.end(), env.begin(), env.end());
  p.terminal = flags.get_bool("tty");
  if (flags.has("no-new-privs")) p.no_new_privileges = flags.get_bool("no-new-privs");
  if (auto user = flags.get_string("user"); !user.empty()) {
    auto colon = user.find(':');
    p.user.uid = parse_id(user.substr(0, colon), "uid");
    if (colon != std::string::npos) p.user.gid = parse_id(user.substr(colon + 1), "gid");
  }
  for (const auto& g : flags.get_list("additional-gids")) p.user.additional_gids.push_back(parse_id(g, "additional gid"));
  if (auto caps = flags.get_list("cap"); !caps.empty()) {
    if (!p.capabilities) p.capabilities.emplace();
    append_caps(p.capabilities->bounding, caps);
    append_caps(p.capabilities->effective, caps);
    append_caps(p.capabilities->permitted, caps);
    if (p.capabilities->ambient) append_caps(p.capabilities->ambient, caps);
  }
  if (flags.has("apparmor")) p.apparmor_profile = flags.get_string("apparmor");
  if (flags.has("process-label")) p.selinux_label = flags.get_string("process-label");
  return p;
}

oci::Process process_from_file(const std::string& path) {
  try {
    return oci::parse_process(nlohmann::json::parse(read_file(path)));
  } catch (const nlohmann::json::exception& e) {
    fail("parse process.json {}: {}", path, e.what());
  } catch (const oci::SpecError& e) {
    fail("invalid process.json: {}", e.what());
  }
}

int exec_foreground(Container& container, ExecOptions options) {
  SignalForwarder forwarder;
  UniqueFd console_ours;
  int console_peer = -1;
  if (options.process.terminal && options.console_socket.empty()) {
    int pair[2];
    check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), "socketpair");
    console_ours.reset(pair[0]);
    console_peer = pair[1];
    options.console_socket_fd = console_peer;
  }
  pid_t pid = container.exec(options);
  container.unlock();
  if (console_peer >= 0) ::close(console_peer);
  if (!console_ours) return forwarder.wait(pid);
  TerminalRelay relay(recv_fd(console_ours.get()));
  forwarder.on_window_change([&] { relay.resize(); });
  std::thread relay_thread([&] { relay.run(); });
  int status = forwarder.wait(pid);
  relay_thread.join();
  return status;
}

int exec_command(const GlobalOptions& global, const ParsedFlags& flags) {
  try {
    auto store = open_store(global);
    // The lock (held until the process runs) makes exec wait for a snapshot's dump to finish.
    Container container = Container::load(store, flags.positional.at(0));
    ExecOptions options;
    options.process = flags.has("process") ? process_from_file(flags.get_string("process"))
                                           : process_from_flags(container, flags);
    if (options.process.args.empty()) fail("args must not be empty");
    options.console_socket = flags.get_string("console-socket");
    options.pid_file = absolute_path(flags.get_string("pid-file"));
    options.preserve_fds = static_cast<int>(flags.get_uint("preserve-fds"));
    options.ignore_paused = flags.get_bool("ignore-paused");
    const bool detach = flags.get_bool("detach");
    if (!options.console_socket.empty() && (!detach || !options.process.terminal))
      fail("cannot use console socket if runc will not detach or allocate tty");
    if (auto groups = flags.get_list("cgroup"); !groups.empty()) {
      // runc's cgroup v2 form: one path below the container's cgroup, for every hierarchy.
      if (groups.size() > 1 || groups[0].find(':') != std::string::npos)
        fail("--cgroup: only a single sub-cgroup path (applied to every hierarchy) is supported");
      if (groups[0].find("..") != std::string::npos) fail("--cgroup: invalid path {}", groups[0]);
      options.sub_cgroup = groups[0];
    }
    if (detach) {
      container.exec(options);
      return 0;
    }
    return exec_foreground(container, std::move(options));
  } catch (const std::exception& e) {
    // runc: a process that could not be started exits 255.
    log::fatal(fmt::format("exec failed: {}", e.what()));
    return 255;
  }
}

}  // namespace

void add_exec_command(std::vector<Command>& out) {
  out.push_back({"exec", "[command options] <container-id> <command> [command options]  || -p process.json <container-id>",
                 "execute new process inside the container", exec_flags(), 1, -1, false, exec_command});
}

}  // namespace deltabox::cli
