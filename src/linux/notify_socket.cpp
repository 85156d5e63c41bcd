#include "linux/notify_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "linux/console.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

constexpr std::chrono::milliseconds kPidPollInterval{100};
constexpr int kBarrierTimeoutMs = 30'000;

// A sockaddr_un for a filesystem path, or for "@name" an abstract address. Returns the length
// to pass to bind/connect, or 0 when the path does not fit.
socklen_t make_address(std::string_view name, sockaddr_un& addr, bool allow_abstract) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (name.empty() || name.size() >= sizeof addr.sun_path) return 0;
  std::memcpy(addr.sun_path, name.data(), name.size());
  if (allow_abstract && name.front() == '@') {
    addr.sun_path[0] = '\0';  // abstract: no terminating NUL, the length says where it ends
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  }
  return sizeof addr;
}

// Binds sock to path. A path too long for sun_path is reached through its directory's
// /proc/self/fd entry, as long state directories are legal.
void bind_path(int sock, const std::filesystem::path& path) {
  sockaddr_un addr{};
  socklen_t len = make_address(path.native(), addr, false);
  UniqueFd dir;
  if (len == 0) {
    dir.reset(::open(path.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) throw_errno(fmt::format("open {}", path.parent_path().native()));
    std::string short_path = fmt::format("/proc/self/fd/{}/{}", dir.get(), path.filename().native());
    len = make_address(short_path, addr, false);
    if (len == 0) fail("notify socket path {} is too long", path.native());
  }
  if (::bind(sock, reinterpret_cast<const sockaddr*>(&addr), len) < 0)
    throw_errno(fmt::format("listen unixgram {}: bind", path.native()));
}

// Alive and not a zombie: in a foreground `run` the container's init is our own child, and it
// stays in /proc, as a zombie, until we reap it after this wait.
bool process_exists(pid_t pid) {
  UniqueFd fd(::open(fmt::format("/proc/{}/stat", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[512];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  std::string_view stat(buf, static_cast<size_t>(n));
  // "pid (comm) S ...": the state follows the last ')', as comm may hold anything.
  size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos || paren + 2 >= stat.size()) return true;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

void send_all_datagram(int sock, std::string_view data, const std::string& host) {
  ssize_t n;
  do n = ::send(sock, data.data(), data.size(), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno(fmt::format("write unixgram {}", host));
}

// sd_notify_barrier: BARRIER=1 with the write end of a pipe; systemd closes it once it has
// processed everything sent before. EOF on the read end means done.
void notify_barrier(int sock) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  send_fd(sock, write_end.get(), "BARRIER=1");
  write_end.reset();

  pollfd pfd{read_end.get(), POLLIN, 0};
  int rc;
  do rc = ::poll(&pfd, 1, kBarrierTimeoutMs);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) throw_errno("poll barrier pipe");
  if (rc == 0) {
    // Probably the other end does not support the sd_notify_barrier protocol.
    log::warn("Timeout after waiting 30s for barrier. Ignored.");
    return;
  }
  char byte;
  ssize_t n;
  do n = ::read(read_end.get(), &byte, 1);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("read barrier pipe");
  if (n > 0) fail("unexpected read from synchronization pipe");
}

}  // namespace

std::optional<NotifySocket> NotifySocket::from_environment(const std::filesystem::path& state_dir) {
  const char* host = std::getenv("NOTIFY_SOCKET");
  if (host == nullptr || *host == '\0') return std::nullopt;
  return create(host, state_dir);
}

NotifySocket NotifySocket::create(std::string host_socket, const std::filesystem::path& state_dir) {
  std::filesystem::path dir = state_dir / "notify";
  if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) throw_errno(fmt::format("mkdir {}", dir.native()));
  std::filesystem::path path = dir / kSocketName;
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) throw_errno(fmt::format("remove {}", path.native()));

  UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("create notify socket");
  bind_path(sock.get(), path);
  if (::chmod(path.c_str(), 0777) < 0) throw_errno(fmt::format("chmod {}", path.native()));
  return NotifySocket(std::move(host_socket), std::move(path), std::move(sock));
}

std::string NotifySocket::container_path() const { return std::string(kContainerDir) + "/" + kSocketName; }

std::string NotifySocket::container_env() const { return "NOTIFY_SOCKET=" + container_path(); }

oci::Mount NotifySocket::mount() const {
  oci::Mount m;
  m.destination = kContainerDir;
  m.type = "bind";
  m.source = socket_path_.parent_path().native();
  m.options = {"bind", "nosuid", "noexec", "nodev", "ro"};
  return m;
}

void NotifySocket::setup_spec(oci::Config& config) const {
  config.mounts.push_back(mount());
  if (!config.process) config.process.emplace();
  config.process->env.push_back(container_env());
}

void NotifySocket::wait_ready_and_forward(pid_t container_pid, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const bool forever = timeout.count() <= 0;
  const Clock::time_point deadline = Clock::now() + timeout;
  Clock::time_point next_pid_check = Clock::now() + kPidPollInterval;

  while (true) {
    auto now = Clock::now();
    if (!forever && now >= deadline)
      fail("timed out after {} ms waiting for READY=1 on the notify socket", timeout.count());
    if (now >= next_pid_check) {
      if (!process_exists(container_pid)) return;
      next_pid_check = now + kPidPollInterval;
    }
    auto wake = next_pid_check;
    if (!forever) wake = std::min(wake, deadline);
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1;

    pollfd pfd{sock_.get(), POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(wait_ms));
    if (rc < 0 && errno != EINTR) throw_errno("poll notify socket");
    if (rc <= 0) continue;

    char buf[4096];
    ssize_t n = ::recv(sock_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      throw_errno(fmt::format("read unixgram {}", socket_path_.native()));
    }
    // sd_notify sends the whole state string in one datagram: no partial messages.
    std::string_view rest(buf, static_cast<size_t>(n));
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      if (line.starts_with("READY=")) {
        notify_host(std::string(line), container_pid);
        return;
      }
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
}

void NotifySocket::notify_host(const std::string& ready_line, pid_t container_pid) const {
  sockaddr_un addr{};
  socklen_t len = make_address(host_, addr, true);
  if (len == 0) fail("invalid NOTIFY_SOCKET \"{}\": empty or too long", host_);
  UniqueFd client(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!client) throw_errno("create socket for NOTIFY_SOCKET");
  int rc;
  do rc = ::connect(client.get(), reinterpret_cast<const sockaddr*>(&addr), len);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) throw_errno(fmt::format("dial unixgram {}: connect", host_));

  send_all_datagram(client.get(), ready_line + "\n", host_);
  // Now the host can monitor the container's init instead of us.
  send_all_datagram(client.get(), fmt::format("MAINPID={}\n", container_pid), host_);
  notify_barrier(client.get());
}

}  // namespace deltabox
