#include "process/anchor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <sstream>
#include <vector>

#include "process/foreground.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) fail("anchor socket path too long: {}", path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

bool forwardable(int sig) {
  return sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL &&
         sig != SIGTRAP && sig != SIGABRT && sig != SIGSYS;
}

void resume_listed(const std::string& procs_file) {
  std::istringstream pids(read_file(procs_file));
  for (pid_t pid; pids >> pid;)
    if (pid > 0) ::kill(pid, SIGCONT);
}

class Anchor {
 public:
  Anchor(pid_t generation, UniqueFd listener) : current_(generation), listener_(std::move(listener)) {
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig = 1; sig < SIGRTMIN; ++sig)
      if (forwardable(sig)) sigaddset(&mask, sig);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    signals_.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
    if (!signals_) throw_errno("anchor: signalfd");
  }

  int run() {
    for (;;) {
      if (auto status = reap()) return *status;
      std::vector<pollfd> fds{{signals_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
      for (const auto& c : clients_) fds.push_back({c.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        throw_errno("anchor: poll");
      }
      if (fds[0].revents) on_signal();
      if (fds[1].revents & POLLIN) accept_client();
      for (size_t i = fds.size(); i-- > 2;)
        if (fds[i].revents) serve(i - 2);
    }
  }

 private:
  // Reaps every exited child; returns the status to exit with once the current generation is gone.
  std::optional<int> reap() {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
      if (pid == current_) return exit_status_of(status);
    return std::nullopt;
  }

  void on_signal() {
    signalfd_siginfo info{};
    if (::read(signals_.get(), &info, sizeof info) != sizeof info) return;
    int sig = static_cast<int>(info.ssi_signo);
    if (sig != SIGCHLD && current_ > 0) ::kill(current_, sig);
  }

  void accept_client() {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    // Only root on the host may steer the container (the socket also lives in a 0711 dir).
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0) {
      ::close(fd);
      return;
    }
    clients_.emplace_back(fd);
  }

  void serve(size_t index) {
    char buf[4096];
    ssize_t n = ::recv(clients_[index].get(), buf, sizeof buf - 1, 0);
    if (n <= 0) {
      clients_.erase(clients_.begin() + static_cast<long>(index));
      return;
    }
    buf[n] = '\0';
    std::string reply;
    try {
      reply = handle(buf);
    } catch (const std::exception& e) {
      reply = std::string("error: ") + e.what();
    }
    ::send(clients_[index].get(), reply.data(), reply.size(), MSG_NOSIGNAL);
  }

  std::string handle(const std::string& message) {
    std::istringstream in(message);
    std::string verb;
    in >> verb;
    if (verb == "current") return std::to_string(current_);
    if (verb != "activate") fail("unknown anchor command \"{}\"", verb);
    AnchorCommand c;
    std::string cont;
    if (!(in >> c.activate >> c.kill >> cont)) fail("malformed activate command");
    // The order matters: the old generation dies as "not current", so we do not exit with it.
    current_ = c.activate;
    if (c.kill > 0) ::kill(c.kill, SIGKILL);
    if (cont != "-") resume_listed(cont);
    return "ok";
  }

  pid_t current_;
  UniqueFd listener_;
  UniqueFd signals_;
  std::vector<UniqueFd> clients_;
};

}  // namespace

std::string format_activate(const AnchorCommand& c) {
  return fmt::format("activate {} {} {}", c.activate, c.kill, c.resume_procs.empty() ? "-" : c.resume_procs);
}

int run_anchor(pid_t first_generation, UniqueFd control_listener) {
  return Anchor(first_generation, std::move(control_listener)).run();
}

UniqueFd anchor_listen(const std::string& socket_path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("anchor: socket");
  auto addr = socket_address(socket_path);
  ::unlink(socket_path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    throw_errno(fmt::format("anchor: bind {}", socket_path));
  if (::listen(fd.get(), 16) < 0) throw_errno("anchor: listen");
  return fd;
}

std::string anchor_request(const std::string& socket_path, const std::string& message) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("anchor: socket");
  auto addr = socket_address(socket_path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    throw_errno(fmt::format("connect to container anchor {}", socket_path));
  if (::send(fd.get(), message.data(), message.size(), MSG_NOSIGNAL) < 0) throw_errno("anchor: send");
  char buf[4096];
  ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
  if (n < 0) throw_errno("anchor: recv");
  if (n == 0) fail("container anchor closed the connection (container stopped?)");
  std::string reply(buf, static_cast<size_t>(n));
  if (reply.rfind("error: ", 0) == 0) throw Error(reply.substr(7));
  return reply;
}

}  // namespace deltabox
