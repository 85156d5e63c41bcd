#include "linux/console.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

UniqueFd connect_console_socket(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty()) fail("console socket path is empty");
  if (path.size() >= sizeof addr.sun_path)
    fail("console socket path {} is too long ({} bytes, a unix socket path holds at most {})", path,
         path.size(), sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path, path.data(), path.size());

  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("create console socket");
  int rc;
  do rc = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) throw_errno(fmt::format("connect to console socket {}", path));
  return sock;
}

void send_fd(int sock, int fd, std::string_view payload) {
  if (payload.empty()) fail("send_fd: the payload needs at least one byte to carry the fd");
  iovec iov{const_cast<char*>(payload.data()), payload.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);

  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("send fd over socket");
  // The fd travelled with the first byte; a short send only leaves payload behind.
  payload.remove_prefix(static_cast<size_t>(n));
  while (!payload.empty()) {
    n = ::send(sock, payload.data(), payload.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("send fd payload over socket");
    payload.remove_prefix(static_cast<size_t>(n));
  }
}

UniqueFd recv_fd(int sock) {
  char data[4096];
  iovec iov{data, sizeof data};
  // Room for a few fds so that a misbehaving sender's extras get closed rather than leaked.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)]{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  ssize_t n;
  do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("receive fd from socket");

  std::vector<UniqueFd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) fail("receive fd from socket: control data truncated (too many fds)");
  if (n == 0 && fds.empty()) fail("receive fd from socket: peer closed the connection without sending one");
  if (fds.size() != 1) fail("receive fd from socket: expected exactly one fd, got {}", fds.size());
  return std::move(fds.front());
}

namespace {

// The slave's name in the devpts instance that ptmx belongs to: /dev/ptmx and
// /dev/pts/ptmx both name their slaves /dev/pts/N.
std::string slave_path_for(const char* ptmx, unsigned number) {
  std::filesystem::path dir = std::filesystem::path(ptmx).parent_path();
  if (dir.filename() != "pts") dir /= "pts";
  return (dir / std::to_string(number)).string();
}

}  // namespace

Pty open_pty(const char* ptmx) {
  Pty pty;
  pty.master.reset(::open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!pty.master) throw_errno(fmt::format("open {}", ptmx));
  int unlock = 0;
  check(::ioctl(pty.master.get(), TIOCSPTLCK, &unlock), "unlock pty from {}", ptmx);
  unsigned number = 0;
  check(::ioctl(pty.master.get(), TIOCGPTN, &number), "get pty number from {}", ptmx);
  pty.slave.reset(::ioctl(pty.master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!pty.slave) throw_errno(fmt::format("open the slave of pty {} from {}", number, ptmx));
  pty.slave_path = slave_path_for(ptmx, number);
  return pty;
}

void set_window_size(int fd, uint16_t rows, uint16_t cols) {
  winsize size{};
  size.ws_row = rows;
  size.ws_col = cols;
  check(::ioctl(fd, TIOCSWINSZ, &size), "set terminal size {}x{}", cols, rows);
}

void make_controlling_terminal(int slave_fd) {
  // TIOCSCTTY needs a session leader without a controlling terminal.
  if (::getsid(0) != ::getpid()) check(::setsid(), "setsid");
  check(::ioctl(slave_fd, TIOCSCTTY, 0), "make the pty our controlling terminal");
}

void dup_onto_stdio(int fd) {
  for (int target = 0; target <= 2; ++target) {
    if (fd == target) {
      // dup2 onto itself would keep FD_CLOEXEC, and the fd would vanish at execve.
      int flags = check(::fcntl(fd, F_GETFD), "fcntl F_GETFD {}", fd);
      check(::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC), "fcntl F_SETFD {}", fd);
    } else {
      check(::dup2(fd, target), "dup2 {} onto {}", fd, target);
    }
  }
}

// ---- TerminalRelay ----

namespace {
constexpr size_t kBufferSize = 64 * 1024;
// Stop reading stdin while this much input waits for a container that is not reading.
constexpr size_t kMaxPendingInput = 1024 * 1024;
}  // namespace

TerminalRelay::TerminalRelay(UniqueFd master, int in, int out)
    : master_(std::move(master)), in_(in), out_(out) {
  // Non-blocking, so that a container that does not read its input cannot stall its output.
  int flags = check(::fcntl(master_.get(), F_GETFL), "fcntl F_GETFL pty master");
  check(::fcntl(master_.get(), F_SETFL, flags | O_NONBLOCK), "fcntl F_SETFL pty master");

  if (::isatty(in_)) size_fd_ = in_;
  else if (::isatty(out_)) size_fd_ = out_;
  try {
    if (size_fd_ >= 0) {
      sigset_t winch;
      sigemptyset(&winch);
      sigaddset(&winch, SIGWINCH);
      if (int err = ::pthread_sigmask(SIG_BLOCK, &winch, &old_sigmask_)) throw_errno(err, "block SIGWINCH");
      restore_sigmask_ = true;
      winch_fd_.reset(::signalfd(-1, &winch, SFD_CLOEXEC | SFD_NONBLOCK));
      if (!winch_fd_) throw_errno("signalfd SIGWINCH");
    }
    if (::isatty(in_)) {
      termios saved{};
      check(::tcgetattr(in_, &saved), "tcgetattr stdin");
      termios raw = saved;
      ::cfmakeraw(&raw);
      check(::tcsetattr(in_, TCSANOW, &raw), "put stdin in raw mode");
      saved_termios_ = std::make_unique<termios>(saved);
    }
  } catch (...) {
    restore();
    throw;
  }
}

TerminalRelay::~TerminalRelay() { restore(); }

void TerminalRelay::restore() noexcept {
  if (saved_termios_) {
    ::tcsetattr(in_, TCSANOW, saved_termios_.get());
    saved_termios_.reset();
  }
  winch_fd_.reset();
  if (restore_sigmask_) {
    ::pthread_sigmask(SIG_SETMASK, &old_sigmask_, nullptr);
    restore_sigmask_ = false;
  }
}

void TerminalRelay::resize() {
  if (size_fd_ < 0) return;
  winsize size{};
  if (::ioctl(size_fd_, TIOCGWINSZ, &size) < 0) return;  // our terminal went away: keep the old size
  check(::ioctl(master_.get(), TIOCSWINSZ, &size), "set pty window size");
}

void TerminalRelay::run() {
  resize();
  std::string pending;  // input read from stdin that the pty has not taken yet
  for (;;) {
    const bool want_input = in_open_ && pending.size() < kMaxPendingInput;
    pollfd fds[3] = {
        {master_.get(), static_cast<short>(POLLIN | (pending.empty() ? 0 : POLLOUT)), 0},
        {want_input ? in_ : -1, POLLIN, 0},
        {winch_fd_.get(), POLLIN, 0},  // -1 (ignored by poll) without a terminal
    };
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll terminal relay");
    }
    if (fds[2].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(winch_fd_.get(), &info, sizeof info) > 0) {
      }
      resize();
    }
    if (fds[1].revents) pump_input(pending);
    if (fds[0].revents & POLLOUT) flush_input(pending);
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !pump_output()) return;
  }
}

void TerminalRelay::pump_input(std::string& pending) {
  char buf[kBufferSize];
  ssize_t n = ::read(in_, buf, sizeof buf);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    // EIO: our terminal hung up; EBADF: no stdin at all. Both mean no more input.
    if (errno != EIO && errno != EBADF) throw_errno("read stdin");
    n = 0;
  }
  if (n == 0) {
    in_open_ = false;
    return;
  }
  pending.append(buf, static_cast<size_t>(n));
  flush_input(pending);
}

void TerminalRelay::flush_input(std::string& pending) {
  while (!pending.empty()) {
    ssize_t n = ::write(master_.get(), pending.data(), pending.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;  // the pty is full: POLLOUT tells us when to retry
      if (errno != EIO) throw_errno("write to pty master");
      // The container side is gone; its output (if any) is still drained by pump_output.
      pending.clear();
      in_open_ = false;
      return;
    }
    pending.erase(0, static_cast<size_t>(n));
  }
}

// Returns false once the container side has hung up and everything it wrote was copied.
bool TerminalRelay::pump_output() {
  char buf[kBufferSize];
  ssize_t n = ::read(master_.get(), buf, sizeof buf);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return true;
    if (errno == EIO) return false;  // the last slave fd was closed
    throw_errno("read pty master");
  }
  if (n == 0) return false;
  write_all(out_, std::string_view(buf, static_cast<size_t>(n)));
  return true;
}

}  // namespace deltabox
