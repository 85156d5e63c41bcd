// checkpoint, restore: runc 1.1's flags, onto Container::checkpoint and Container::restore.
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "cli/command.hpp"
#include "container/container.hpp"
#include "linux/console.hpp"
#include "process/foreground.hpp"
#include "util/error.hpp"

namespace deltabox::cli {

namespace {

// CRIU flags both verbs take, with runc's help texts.
FlagSpec image_path_flag(const char* usage) { return {"image-path", "", FlagKind::string, "value", "", usage}; }
FlagSpec work_path_flag() { return {"work-path", "", FlagKind::string, "value", "", "path for saving work files and logs"}; }
FlagSpec tcp_flag() { return {"tcp-established", "", FlagKind::boolean, "", "", "allow open tcp connections"}; }
FlagSpec unix_sk_flag() { return {"ext-unix-sk", "", FlagKind::boolean, "", "", "allow external unix sockets"}; }
FlagSpec shell_job_flag() { return {"shell-job", "", FlagKind::boolean, "", "", "allow shell jobs"}; }
FlagSpec lazy_pages_flag() { return {"lazy-pages", "", FlagKind::boolean, "", "", "use userfaultfd to lazily restore memory pages"}; }
FlagSpec file_locks_flag() { return {"file-locks", "", FlagKind::boolean, "", "", "handle file locks, for safety"}; }
FlagSpec cgroups_mode_flag() {
  return {"manage-cgroups-mode", "", FlagKind::string, "value", "", "cgroups mode: 'soft' (default), 'full' and 'strict'"};
}
FlagSpec empty_ns_flag() {
  return {"empty-ns", "", FlagKind::string_list, "value", "", "create a namespace, but don't restore its properties"};
}
FlagSpec auto_dedup_flag() { return {"auto-dedup", "", FlagKind::boolean, "", "", "enable auto deduplication of memory images"}; }

std::vector<FlagSpec> checkpoint_flags() {
  return {
      image_path_flag("path for saving criu image files"),
      work_path_flag(),
      {"parent-path", "", FlagKind::string, "value", "", "path for previous criu image files in pre-dump"},
      {"leave-running", "", FlagKind::boolean, "", "", "leave the process running after checkpointing"},
      tcp_flag(),
      unix_sk_flag(),
      shell_job_flag(),
      lazy_pages_flag(),
      {"status-fd", "", FlagKind::integer, "value", "-1", "criu writes \\0 to this FD once lazy-pages is ready"},
      {"page-server", "", FlagKind::string, "value", "", "ADDRESS:PORT of the page server"},
      file_locks_flag(),
      {"pre-dump", "", FlagKind::boolean, "", "", "dump container's memory information only, leave the container running after this"},
      cgroups_mode_flag(),
      empty_ns_flag(),
      auto_dedup_flag(),
  };
}

std::vector<FlagSpec> restore_flags() {
  return {
      {"console-socket", "", FlagKind::string, "value", "", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
      image_path_flag("path to criu image files for restoring"),
      work_path_flag(),
      tcp_flag(),
      unix_sk_flag(),
      shell_job_flag(),
      file_locks_flag(),
      cgroups_mode_flag(),
      {"bundle", "b", FlagKind::string, "value", "", "path to the root of the bundle directory"},
      {"detach", "d", FlagKind::boolean, "", "", "detach from the container's process"},
      {"pid-file", "", FlagKind::string, "value", "", "specify the file to write the process id to"},
      {"no-subreaper", "", FlagKind::boolean, "", "", "disable the use of the subreaper used to reap reparented processes"},
      {"no-pivot", "", FlagKind::boolean, "", "", "do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk"},
      empty_ns_flag(),
      auto_dedup_flag(),
      lazy_pages_flag(),
      {"lsm-profile", "", FlagKind::string, "value", "", "Specify an LSM profile to be used during restore in the form of TYPE:NAME."},
      {"lsm-mount-context", "", FlagKind::string, "value", "", "Specify an LSM mount context to be used during restore."},
  };
}

// runc: the images default to ./checkpoint.
std::filesystem::path image_path(const ParsedFlags& flags, const std::filesystem::path& base) {
  std::filesystem::path p = flags.get_string("image-path");
  if (p.empty()) p = "checkpoint";
  return (p.is_relative() ? base / p : p).lexically_normal();
}

std::filesystem::path work_path(const ParsedFlags& flags, const std::filesystem::path& base) {
  std::filesystem::path p = flags.get_string("work-path");
  if (p.empty()) return p;
  return (p.is_relative() ? base / p : p).lexically_normal();
}

int checkpoint_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  auto container = Container::load(store, flags.positional.at(0));
  const auto cwd = std::filesystem::current_path();
  CheckpointOptions o;
  o.image_path = image_path(flags, cwd);
  o.work_path = work_path(flags, cwd);
  o.parent_path = flags.get_string("parent-path");
  o.leave_running = flags.get_bool("leave-running");
  o.tcp_established = flags.get_bool("tcp-established");
  o.ext_unix_sk = flags.get_bool("ext-unix-sk");
  o.shell_job = flags.get_bool("shell-job");
  o.file_locks = flags.get_bool("file-locks");
  o.pre_dump = flags.get_bool("pre-dump");
  o.auto_dedup = flags.get_bool("auto-dedup");
  o.lazy_pages = flags.get_bool("lazy-pages");
  o.page_server = flags.get_string("page-server");
  o.manage_cgroups_mode = flags.get_string("manage-cgroups-mode");
  o.empty_ns = flags.get_list("empty-ns");
  o.criu_path = global.criu;
  container.checkpoint(o);
  return 0;
}

RestoreOptions restore_options(const GlobalOptions& global, const ParsedFlags& flags) {
  RestoreOptions o;
  CreateOptions& c = o.create;
  c.id = flags.positional.at(0);
  std::string bundle = flags.get_string("bundle");
  c.bundle = absolute_path(bundle.empty() ? "." : bundle);
  c.console_socket = flags.get_string("console-socket");
  c.pid_file = absolute_path(flags.get_string("pid-file"));
  c.no_pivot = flags.get_bool("no-pivot");
  c.systemd_cgroup = global.systemd_cgroup;
  c.rootless = global.rootless;
  o.detach = flags.get_bool("detach");
  // runc chdirs into the bundle before it looks at the image paths.
  o.image_path = image_path(flags, c.bundle);
  o.work_path = work_path(flags, c.bundle);
  o.tcp_established = flags.get_bool("tcp-established");
  o.ext_unix_sk = flags.get_bool("ext-unix-sk");
  o.shell_job = flags.get_bool("shell-job");
  o.file_locks = flags.get_bool("file-locks");
  o.auto_dedup = flags.get_bool("auto-dedup");
  o.manage_cgroups_mode = flags.get_string("manage-cgroups-mode");
  o.empty_ns = flags.get_list("empty-ns");
  o.lsm_profile = flags.get_string("lsm-profile");
  o.lsm_mount_context = flags.get_string("lsm-mount-context");
  o.criu_path = global.criu;
  if (flags.get_bool("lazy-pages")) fail("--lazy-pages is not supported by deltabox");
  return o;
}

bool config_wants_terminal(const std::filesystem::path& bundle) {
  try {
    auto config = oci::load_config(bundle / "config.json");
    return config.process && config.process->terminal;
  } catch (const std::exception&) {
    return false;  // restore reports the config error with its full context
  }
}

// Foreground restore, like a foreground run: we are the subreaper the restored init is
// reparented to when CRIU exits; relay its terminal, forward signals, exit with its status and
// delete the container afterwards.
int restore_foreground(const StateStore& store, RestoreOptions options) {
  SignalForwarder forwarder;
  UniqueFd console_ours, console_peer;
  const bool terminal = config_wants_terminal(options.create.bundle);
  if (terminal) {
    int pair[2];
    check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), "socketpair");
    console_ours.reset(pair[0]);
    console_peer.reset(pair[1]);
    options.create.console_socket_fd = console_peer.get();
  }
  Container container = Container::restore(store, options);
  console_peer.reset();
  std::unique_ptr<TerminalRelay> relay;
  if (terminal) {
    relay = std::make_unique<TerminalRelay>(recv_fd(console_ours.get()));
    forwarder.on_window_change([&] { relay->resize(); });
  }
  const std::string id = container.id();
  const pid_t pid = container.state().init_pid;
  container.unlock();
  std::thread relay_thread;
  if (relay) relay_thread = std::thread([&] { relay->run(); });
  int status = forwarder.wait(pid);
  if (relay_thread.joinable()) relay_thread.join();
  Container::load(store, id).destroy(true);
  return status;
}

int restore_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  RestoreOptions options = restore_options(global, flags);
  if (options.detach) {
    Container::restore(store, options);
    return 0;
  }
  return restore_foreground(store, std::move(options));
}

}  // namespace

void add_checkpoint_commands(std::vector<Command>& out) {
  out.push_back({"checkpoint", "[command options] <container-id>\n\nWhere \"<container-id>\" is the name for the instance of the container to be\ncheckpointed.",
                 "checkpoint a running container", checkpoint_flags(), 1, 1, true, checkpoint_command});
  out.push_back({"restore", "[command options] <container-id>\n\nWhere \"<container-id>\" is the name for the instance of the container to be\nrestored.",
                 "restore a container from a previous checkpoint", restore_flags(), 1, 1, true, restore_command});
}

}  // namespace deltabox::cli
