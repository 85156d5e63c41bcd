// create, start, run, delete, kill.
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "cli/command.hpp"
#include "container/container.hpp"
#include "linux/console.hpp"
#include "linux/notify_socket.hpp"
#include "linux/signals.hpp"
#include "process/foreground.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox::cli {

namespace {

std::vector<FlagSpec> create_flags() {
  return {
      {"bundle", "b", FlagKind::string, "value", "", "path to the root of the bundle directory, defaults to the current directory"},
      {"console-socket", "", FlagKind::string, "value", "", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
      {"pid-file", "", FlagKind::string, "value", "", "specify the file to write the process id to"},
      {"no-pivot", "", FlagKind::boolean, "", "", "do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk"},
      {"no-new-keyring", "", FlagKind::boolean, "", "", "do not create a new session keyring for the container.  This will cause the container to inherit the calling processes session key"},
      {"preserve-fds", "", FlagKind::uinteger, "value", "0", "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"},
      {"snapshots", "", FlagKind::boolean, "", "", "enable snapshot, rollback and fork for this container (same as the annotation io.deltabox.snapshots=true)"},
  };
}

CreateOptions create_options(const GlobalOptions& global, const ParsedFlags& flags) {
  CreateOptions o;
  o.id = flags.positional.at(0);
  std::string bundle = flags.get_string("bundle");
  o.bundle = absolute_path(bundle.empty() ? "." : bundle);
  o.console_socket = flags.get_string("console-socket");
  o.pid_file = absolute_path(flags.get_string("pid-file"));
  o.no_pivot = flags.get_bool("no-pivot");
  o.no_new_keyring = flags.get_bool("no-new-keyring");
  o.preserve_fds = static_cast<int>(flags.get_uint("preserve-fds"));
  o.systemd_cgroup = global.systemd_cgroup;
  o.rootless = global.rootless;
  o.snapshots = flags.get_bool("snapshots");
  o.store = global.store;
  o.criu = global.criu;
  return o;
}

bool has_notify_mount(const oci::Config& config) {
  for (const auto& m : config.mounts)
    if (m.destination == NotifySocket::kContainerDir) return true;
  return false;
}

// runc's NOTIFY_SOCKET proxy, start's half: a fresh socket in the directory `create` mounted at
// /run/notify, bound before the container's process runs so that no READY=1 is lost. Only for
// a container created with NOTIFY_SOCKET set: without the mount nobody could ever answer.
std::optional<NotifySocket> bind_notify_socket(const StateStore& store, const Container& container) {
  if (container.status() != oci::Status::created) return std::nullopt;
  if (!has_notify_mount(container.state().parsed_config())) return std::nullopt;
  return NotifySocket::from_environment(store.dir(container.id()));
}

// Called with the container unlocked: waiting for READY=1 may take as long as the service
// likes (runc waits forever too), and exec/state must work meanwhile.
void forward_ready(std::optional<NotifySocket>& notify, pid_t init_pid) {
  if (notify) notify->wait_ready_and_forward(init_pid, std::chrono::milliseconds(0));
}

// start, with the NOTIFY_SOCKET proxy when the container has one.
void start_and_notify(const StateStore& store, Container& container) {
  auto notify = bind_notify_socket(store, container);
  container.start();
  const pid_t pid = container.state().init_pid;
  container.unlock();
  forward_ready(notify, pid);
}

int create_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  Container::create(store, create_options(global, flags));
  return 0;
}

int start_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  Container container = Container::load(store, flags.positional.at(0));
  start_and_notify(store, container);
  return 0;
}

bool config_wants_terminal(const std::filesystem::path& bundle) {
  auto config = oci::load_config(bundle / "config.json");
  return config.process && config.process->terminal;
}

// Foreground run: we are the container's parent. Relay its terminal if it has one, forward our
// signals, and exit with its status.
int run_foreground(const StateStore& store, CreateOptions options, bool keep, bool subreaper) {
  SignalForwarder forwarder(subreaper);
  int console_peer = -1;
  UniqueFd console_ours;
  bool terminal = false;
  try {
    terminal = config_wants_terminal(options.bundle);
  } catch (const std::exception&) {
    // create reports the config error with its full context.
  }
  if (terminal) {
    int pair[2];
    check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), "socketpair");
    console_ours.reset(pair[0]);
    console_peer = pair[1];
    options.console_socket_fd = console_peer;
  }
  Container container = Container::create(store, options);
  if (console_peer >= 0) ::close(console_peer);
  std::unique_ptr<TerminalRelay> relay;
  if (terminal) {
    relay = std::make_unique<TerminalRelay>(recv_fd(console_ours.get()));
    forwarder.on_window_change([&] { relay->resize(); });
  }
  auto notify = bind_notify_socket(store, container);
  container.start();
  const std::string id = container.id();
  const pid_t pid = container.state().init_pid;
  container.unlock();
  std::thread relay_thread;
  if (relay) relay_thread = std::thread([&] { relay->run(); });
  try {
    forward_ready(notify, pid);
  } catch (const std::exception& e) {
    // The container runs and we are its parent: keep relaying and reaping it.
    log::error("notify socket: {}", e.what());
  }
  int status = forwarder.wait(pid);
  if (relay_thread.joinable()) relay_thread.join();
  if (!keep) Container::load(store, id).destroy(true);
  return status;
}

int run_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  CreateOptions options = create_options(global, flags);
  if (flags.get_bool("detach")) {
    Container container = Container::create(store, options);
    start_and_notify(store, container);
    return 0;
  }
  return run_foreground(store, std::move(options), flags.get_bool("keep"), !flags.get_bool("no-subreaper"));
}

int delete_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  const std::string& id = flags.positional.at(0);
  const bool force = flags.get_bool("force");
  if (force) {
    // A snapshot's dump in the background holds the container's lock: killing the processes
    // makes it fail fast (nothing becomes visible) and hands the lock back.
    try {
      Container::peek(store, id).kill(SIGKILL, true);
    } catch (const Error&) {
    }
  }
  try {
    Container::load(store, id).destroy(force);
  } catch (const Error& e) {
    // runc: with --force an unknown container is not an error, and leftovers go.
    if (!force || std::string(e.what()) != "container does not exist") throw;
    validate_container_id(id);
    if (store.exists(id)) store.remove_dir(id);
  }
  return 0;
}

int kill_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  int signal = flags.positional.size() > 1 ? parse_signal(flags.positional[1]) : SIGTERM;
  // No lock: a signal needs no serialising, and must get through while a dump holds the lock.
  Container::peek(store, flags.positional.at(0)).kill(signal, flags.get_bool("all"));
  return 0;
}

}  // namespace

void add_lifecycle_commands(std::vector<Command>& out) {
  out.push_back({"create", "[command options] <container-id>", "create a container", create_flags(), 1, 1, true,
                 create_command});
  out.push_back({"start", "<container-id>", "executes the user defined process in a created container", {}, 1, 1,
                 true, start_command});
  auto run_flags = create_flags();
  run_flags.push_back({"detach", "d", FlagKind::boolean, "", "", "detach from the container's process"});
  run_flags.push_back({"keep", "", FlagKind::boolean, "", "", "do not delete the container after it exits"});
  run_flags.push_back({"no-subreaper", "", FlagKind::boolean, "", "", "disable the use of the subreaper used to reap reparented processes"});
  out.push_back({"run", "[command options] <container-id>", "create and run a container", run_flags, 1, 1, true,
                 run_command});
  out.push_back({"delete", "[command options] <container-id>", "delete any resources held by the container often used with detached container",
                 {{"force", "f", FlagKind::boolean, "", "", "Forcibly deletes the container if it is still running (uses SIGKILL)"}},
                 1, 1, true, delete_command});
  out.push_back({"kill", "[command options] <container-id> [signal]", "kill sends the specified signal (default: SIGTERM) to the container's init process",
                 {{"all", "a", FlagKind::boolean, "", "", "send the specified signal to all processes inside the container"}},
                 1, 2, false, kill_command});
}

}  // namespace deltabox::cli
