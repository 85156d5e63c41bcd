// Console: fd passing, ptys and the foreground relay. The relay runs in forked children that
// report through their exit code only.
#include <doctest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "linux/console.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

using namespace deltabox;

namespace {

template <typename Fn>
int in_child(Fn&& fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(20);
    int rc = 99;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      rc = 98;
    } catch (...) {
      rc = 97;
    }
    ::_exit(rc);
  }
  REQUIRE(pid > 0);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

// Reads whatever is available within a short wait (pty reads may split).
std::string read_some(int fd, size_t want) {
  std::string out;
  for (int tries = 0; tries < 50 && out.size() < want; ++tries) {
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) out.append(buf, static_cast<size_t>(n));
    else if (n < 0 && errno != EAGAIN && errno != EINTR) break;
    else ::usleep(10000);
  }
  return out;
}

std::string read_to_eof(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("console: send_fd/recv_fd pass one fd over a socketpair") {
  SocketPair sock;
  Pipe pipe;
  send_fd(sock.a.get(), pipe.write.get(), "/dev/ptmx");
  UniqueFd received = recv_fd(sock.b.get());
  REQUIRE(received);
  CHECK(received.get() != pipe.write.get());
  CHECK((::fcntl(received.get(), F_GETFD) & FD_CLOEXEC) != 0);
  pipe.write.reset();
  write_all(received.get(), "through the socket");
  received.reset();
  CHECK(read_to_eof(pipe.read.get()) == "through the socket");
}

TEST_CASE("console: send_fd needs a payload; recv_fd reports a closed peer or a missing fd") {
  SocketPair sock;
  CHECK(contains(error_of([&] { send_fd(sock.a.get(), 0, ""); }), "at least one byte"));

  write_all(sock.a.get(), "x");  // data without an fd
  CHECK(contains(error_of([&] { recv_fd(sock.b.get()); }), "expected exactly one fd, got 0"));

  sock.a.reset();
  CHECK(contains(error_of([&] { recv_fd(sock.b.get()); }), "peer closed the connection"));
}

TEST_CASE("console: connect_console_socket connects, and explains bad paths") {
  char dir_template[] = "/tmp/deltabox-console-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string path = std::string(dir_template) + "/console.sock";

  CHECK(contains(error_of([&] { connect_console_socket(path); }),
                 "connect to console socket " + path + ": no such file or directory"));
  CHECK(contains(error_of([&] { connect_console_socket("/tmp/" + std::string(200, 'x')); }), "is too long"));
  CHECK(contains(error_of([&] { connect_console_socket(""); }), "empty"));

  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener.get(), 1) == 0);

  UniqueFd client = connect_console_socket(path);
  CHECK((::fcntl(client.get(), F_GETFD) & FD_CLOEXEC) != 0);
  UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(server);
  Pty pty = open_pty();
  send_fd(client.get(), pty.master.get(), "/dev/ptmx");
  UniqueFd master = recv_fd(server.get());
  CHECK(::isatty(master.get()));

  ::unlink(path.c_str());
  ::rmdir(dir_template);
}

TEST_CASE("console: open_pty gives a connected pair and resizes") {
  Pty pty = open_pty();
  REQUIRE(pty.master);
  REQUIRE(pty.slave);
  CHECK(pty.slave_path.rfind("/dev/pts/", 0) == 0);
  struct stat by_path {}, by_fd {};
  REQUIRE(::stat(pty.slave_path.c_str(), &by_path) == 0);
  REQUIRE(::fstat(pty.slave.get(), &by_fd) == 0);
  CHECK(by_path.st_rdev == by_fd.st_rdev);
  CHECK((::fcntl(pty.slave.get(), F_GETFD) & FD_CLOEXEC) != 0);

  write_all(pty.slave.get(), "ping\n");
  CHECK(read_some(pty.master.get(), 6) == "ping\r\n");  // ONLCR on the slave side

  termios t{};
  REQUIRE(::tcgetattr(pty.slave.get(), &t) == 0);
  t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  REQUIRE(::tcsetattr(pty.slave.get(), TCSANOW, &t) == 0);
  write_all(pty.master.get(), "pong\n");
  CHECK(read_some(pty.slave.get(), 5) == "pong\n");

  set_window_size(pty.master.get(), 33, 111);
  winsize ws{};
  REQUIRE(::ioctl(pty.slave.get(), TIOCGWINSZ, &ws) == 0);
  CHECK(ws.ws_row == 33);
  CHECK(ws.ws_col == 111);
}

TEST_CASE("console: dup_onto_stdio and make_controlling_terminal (child)") {
  Pty pty = open_pty();
  const int slave = pty.slave.get();
  int rc = in_child([&] {
    pty.master.reset();
    make_controlling_terminal(slave);
    dup_onto_stdio(slave);
    for (int fd = 0; fd <= 2; ++fd) {
      if (!::isatty(fd)) return 1 + fd;
      if (::fcntl(fd, F_GETFD) & FD_CLOEXEC) return 4 + fd;
    }
    if (::tcgetsid(0) != ::getpid()) return 7;  // we lead the session the tty belongs to
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("console: TerminalRelay puts a terminal stdin in raw mode and restores it") {
  Pty host = open_pty();  // stands in for the user's terminal
  Pty container = open_pty();
  set_window_size(host.slave.get(), 40, 120);
  termios before{};
  REQUIRE(::tcgetattr(host.slave.get(), &before) == 0);
  REQUIRE((before.c_lflag & ICANON) != 0);
  const int container_slave = container.slave.get();
  {
    TerminalRelay relay(std::move(container.master), host.slave.get(), host.slave.get());
    termios during{};
    REQUIRE(::tcgetattr(host.slave.get(), &during) == 0);
    CHECK((during.c_lflag & (ICANON | ECHO)) == 0);
    relay.resize();
    winsize ws{};
    REQUIRE(::ioctl(container_slave, TIOCGWINSZ, &ws) == 0);
    CHECK(ws.ws_row == 40);
    CHECK(ws.ws_col == 120);
  }
  termios after{};
  REQUIRE(::tcgetattr(host.slave.get(), &after) == 0);
  CHECK(after.c_lflag == before.c_lflag);
  CHECK(after.c_oflag == before.c_oflag);
  sigset_t mask;
  REQUIRE(::pthread_sigmask(SIG_SETMASK, nullptr, &mask) == 0);
  CHECK_FALSE(sigismember(&mask, SIGWINCH));
}

TEST_CASE("console: TerminalRelay copies piped stdin in and output out until hang-up (child)") {
  Pipe in, out;
  write_all(in.write.get(), "hello\n");
  in.write.reset();  // stdin is at EOF before the container even answers
  const int in_fd = in.read.get(), out_fd = out.write.get();
  int rc = in_child([&] {
    Pty pty = open_pty();
    pid_t app = ::fork();
    if (app == 0) {
      // The "container process": a line in, a slow answer out, then exit.
      pty.master.reset();
      make_controlling_terminal(pty.slave.get());
      dup_onto_stdio(pty.slave.get());
      char line[64] = {};
      ssize_t n = ::read(0, line, sizeof line - 1);
      if (n <= 0) ::_exit(1);
      ::usleep(200 * 1000);  // after stdin's EOF: the relay must keep draining
      std::string answer = "got:" + std::string(line, static_cast<size_t>(n));
      for (int i = 0; i < 2000; ++i) answer += "0123456789";  // more than one pty buffer
      answer += "END\n";
      write_all(1, answer);
      ::_exit(0);
    }
    pty.slave.reset();  // else the master never sees the hang-up
    TerminalRelay relay(std::move(pty.master), in_fd, out_fd);
    relay.run();
    int status = 0;
    ::waitpid(app, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  });
  out.write.reset();
  const std::string output = read_to_eof(out.read.get());
  CHECK(rc == 0);
  CHECK(contains(output, "hello\r\n"));  // the pty's echo
  CHECK(contains(output, "got:hello\r\n"));
  CHECK(contains(output, "END\r\n"));
  CHECK(output.size() >= 20000);
}
