#pragma once
// NOTIFY_SOCKET (systemd's sd_notify protocol) proxied into the container, as runc's
// notify_socket.go does:
//   * When the runtime runs with NOTIFY_SOCKET=<host socket> in its environment, it creates
//     <state dir>/notify/ (0755) and binds a SOCK_DGRAM unix socket notify.sock in it (0777, so
//     any container user can write to it).
//   * The config gets a bind mount of <state dir>/notify on /run/notify (options bind, nosuid,
//     noexec, nodev, ro) and NOTIFY_SOCKET=/run/notify/notify.sock appended to process.env.
//     The directory, not the socket file, is mounted: `start` binds a fresh socket in it later.
//   * runc binds the socket in `run` (right after creating the container) and in `start`
//     (before opening the exec FIFO); `create` only creates the directory. After starting the
//     container's process, it waits until the container sends a datagram with a "READY=..."
//     line, then sends that line, then "MAINPID=<container init's host pid>", to the host
//     socket (one datagram each, '\n'-terminated), then does sd_notify_barrier: "BARRIER=1"
//     with the write end of a pipe, waiting up to 30 s for systemd to close it (a timeout is
//     only a warning). If the container init goes away first, waiting stops without error.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include <oci/config.hpp>

#include "util/fd.hpp"

namespace deltabox {

class NotifySocket {
 public:
  static constexpr const char* kContainerDir = "/run/notify";
  static constexpr const char* kSocketName = "notify.sock";

  // nullopt when NOTIFY_SOCKET is unset or empty; otherwise create(getenv, state_dir).
  static std::optional<NotifySocket> from_environment(const std::filesystem::path& state_dir);
  // host_socket: a path, or "@name" for an abstract address (as sd_notify accepts).
  // state_dir: the container's state directory (<root>/<id>). Creates <state_dir>/notify if
  // needed, replaces any stale notify.sock with a freshly bound one and chmods it 0777.
  static NotifySocket create(std::string host_socket, const std::filesystem::path& state_dir);

  // "/run/notify/notify.sock": the socket's path inside the container.
  std::string container_path() const;
  // "NOTIFY_SOCKET=/run/notify/notify.sock", for process.env.
  std::string container_env() const;
  // The bind mount of the socket's directory to add to config.mounts.
  oci::Mount mount() const;
  // runc's setupSpec: appends mount() to config.mounts and container_env() to process.env.
  void setup_spec(oci::Config& config) const;

  const std::filesystem::path& socket_path() const { return socket_path_; }  // on the host
  const std::string& host_socket() const { return host_; }

  // Waits for a "READY=..." line from the container and forwards it as described above.
  // container_pid is the host pid of the container's init (MAINPID is rewritten to it); it is
  // polled every 100 ms, and waiting ends quietly once /proc/<pid> is gone. A timeout <= 0
  // waits forever, like runc; otherwise Error("timed out after N ms waiting for READY=1 on
  // the notify socket").
  void wait_ready_and_forward(pid_t container_pid, std::chrono::milliseconds timeout);

 private:
  NotifySocket(std::string host, std::filesystem::path socket_path, UniqueFd sock)
      : host_(std::move(host)), socket_path_(std::move(socket_path)), sock_(std::move(sock)) {}
  void notify_host(const std::string& ready_line, pid_t container_pid) const;

  std::string host_;
  std::filesystem::path socket_path_;
  UniqueFd sock_;
};

}  // namespace deltabox
