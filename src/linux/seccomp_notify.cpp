#include "linux/seccomp_notify.hpp"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <oci/config.hpp>

#include "linux/console.hpp"
#include "util/error.hpp"

namespace deltabox {

nlohmann::ordered_json container_process_state(pid_t pid, const std::string& metadata,
                                               const nlohmann::json& container_state) {
  nlohmann::ordered_json message;
  message["ociVersion"] = oci::kSpecVersion;
  message["fds"] = nlohmann::ordered_json::array({kSeccompFdName});
  message["pid"] = pid;
  if (!metadata.empty()) message["metadata"] = metadata;
  // Keep the caller's key order where it has one (a parsed ordered_json dumps back the same).
  message["state"] = nlohmann::ordered_json::parse(container_state.dump());
  return message;
}

void send_seccomp_listener(const std::string& listener_path, int notify_fd, pid_t pid, const std::string& metadata,
                           const nlohmann::json& container_state) {
  const std::string connect_error =
      fmt::format("failed to connect with seccomp agent specified in the seccomp profile: dial unix {}: connect",
                  listener_path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (listener_path.empty() || listener_path.size() >= sizeof addr.sun_path) throw Error(connect_error, EINVAL);
  std::memcpy(addr.sun_path, listener_path.data(), listener_path.size());

  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("create socket for the seccomp agent");
  int rc;
  do rc = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) throw_errno(connect_error);

  std::string message = container_process_state(pid, metadata, container_state).dump();
  try {
    send_fd(sock.get(), notify_fd, message);
  } catch (const Error& e) {
    throw Error(fmt::format("cannot send seccomp fd to {}", listener_path), e.code());
  }
}

UniqueFd copy_fd_from_process(pid_t pid, int fd) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) throw_errno("pidfd_open");
  UniqueFd copy(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!copy) throw_errno("pidfd_getfd");
  return copy;
}

void receive_seccomp_fd(const SyncChannel& channel, pid_t pid, const std::string& payload,
                        const std::function<void(int notify_fd, pid_t pid)>& send) {
  if (!send) fail("seccomp listenerPath is not set");
  if (pid <= 0) fail("seccomp notify fd from an unknown process");
  int fd = -1;
  try {
    fd = std::stoi(payload);
  } catch (const std::exception&) {
    fail("invalid seccomp notify fd \"{}\"", payload);
  }
  UniqueFd copy = copy_fd_from_process(pid, fd);
  // The child can go on: a notified syscall just waits for the agent.
  channel.send(SyncMsg::proceed);
  send(copy.get(), pid);
}

}  // namespace deltabox
