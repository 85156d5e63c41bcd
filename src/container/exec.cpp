// `exec`: start another process inside a running container.
#include <sys/syscall.h>
#include <unistd.h>

#include "container/container.hpp"
#include "container/generation.hpp"
#include "container/validate.hpp"
#include "linux/console.hpp"
#include "linux/namespaces.hpp"
#include "linux/seccomp_notify.hpp"
#include "process/hooks.hpp"
#include "process/exec_launcher.hpp"
#include "process/finalize.hpp"
#include "process/listen_fds.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {
int namespace_flags(const oci::Config& config) {
  int flags = 0;
  if (config.linux)
    for (const auto& ns : config.linux->namespaces) flags |= clone_flag(ns.type);
  return flags;
}
}  // namespace

pid_t Container::exec(const ExecOptions& options) {
  switch (status()) {
    case oci::Status::stopped:
      throw ExecStartError("cannot exec in a stopped container");
    case oci::Status::paused:
      if (!options.ignore_paused) throw ExecStartError("cannot exec in a paused container (use --ignore-paused to override)");
      break;
    default:
      break;
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, workload_pid(), 0)));
  if (!pidfd || !same_process_alive(workload_pid(), workload_start_time()))
    throw ExecStartError("cannot exec in a stopped container");
  if (options.process.terminal && options.console_socket.empty() && options.console_socket_fd < 0)
    throw ExecStartError("cannot allocate tty if runc will detach without setting console socket");

  // Bad scheduler/ioPriority/execCPUAffinity values fail here, before any process exists.
  validate_process_attrs(options.process);
  oci::Config config = state_.parsed_config();
  auto cgroups = workload_cgroups();
  if (!options.sub_cgroup.empty()) {
    auto sub = leaf_cgroup(*cgroups, options.sub_cgroup);
    for (const auto& p : sub->placements())
      if (::access(p.dir.c_str(), F_OK) < 0) throw ExecStartError(fmt::format("cgroup {} does not exist", p.dir));
    cgroups = std::move(sub);
  }
  UniqueFd console;
  if (!options.console_socket.empty()) console = connect_console_socket(options.console_socket);

  ExecSpec spec;
  spec.target_pidfd = pidfd.get();
  spec.namespace_flags = namespace_flags(config);
  spec.cgroups = cgroups.get();
  spec.process = options.process;
  if (config.linux) {
    spec.seccomp = config.linux->seccomp;
    spec.personality = config.linux->personality;
  }
  // runc: the exec'd process's own notify fd goes to the agent, with the container "running"
  // and the state's pid the container init's.
  if (spec.seccomp && !spec.seccomp->listener_path.empty())
    spec.send_seccomp_fd = [&, init = init_pid()](int notify_fd, pid_t pid) {
      HookState st{state_.id, oci::Status::running, init, state_.bundle.string(), config.annotations};
      send_seccomp_listener(spec.seccomp->listener_path, notify_fd, pid, spec.seccomp->listener_metadata,
                            nlohmann::json::parse(st.to_json()));
    };
  spec.cpuset_cpus = cpuset_cpus_configured(config);
  spec.console_socket = console ? console.get() : options.console_socket_fd;
  spec.inherited_fds = socket_activation_fds(spec.extra_env) + options.preserve_fds;
  pid_t pid = launch_exec(spec);
  if (!options.pid_file.empty()) write_pid_file(options.pid_file, pid);
  return pid;
}

}  // namespace deltabox
