#pragma once
// Terminals: the --console-socket protocol, pty allocation inside the container, and the
// foreground relay between our own terminal and the container's pty.
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/fd.hpp"

struct termios;  // <termios.h> defines many short macros (ECHO, B0, ...): keep them out of here

namespace deltabox {

// Connects (CLOEXEC) to the AF_UNIX SOCK_STREAM socket at path.
UniqueFd connect_console_socket(const std::string& path);

// Sends fd over sock in one message: SCM_RIGHTS with exactly one fd, and payload as data
// (at least one byte is needed on a stream socket; runc sends "/dev/ptmx").
void send_fd(int sock, int fd, std::string_view payload);
// Receives one message carrying exactly one fd (returned CLOEXEC); the payload is ignored.
UniqueFd recv_fd(int sock);

struct Pty {
  UniqueFd master;
  UniqueFd slave;
  std::string slave_path;  // e.g. /dev/pts/3
};
// Opens a new pty pair from ptmx (both ends O_NOCTTY|O_CLOEXEC). The slave is opened through
// TIOCGPTPEER, so a path swapped under /dev/pts cannot redirect it. slave_path is the name the
// pty has in the devpts instance ptmx belongs to, for display and /dev/console bind mounts.
Pty open_pty(const char* ptmx = "/dev/ptmx");

void set_window_size(int fd, uint16_t rows, uint16_t cols);

// Makes the tty on slave_fd our controlling terminal, starting a new session if we do not
// lead one already.
void make_controlling_terminal(int slave_fd);

// dup2s fd onto stdin, stdout and stderr (the copies are not CLOEXEC).
void dup_onto_stdio(int fd);

// Relays between our stdio and a pty master for a foreground `run`/`exec -t`:
// stdin -> master, master -> stdout, until the container side hangs up and output is drained.
// While it exists, a terminal on stdin is in raw mode (restored by the destructor, even on
// exceptions). When stdin or stdout is a terminal, its window size is copied onto the pty at
// the start and on every SIGWINCH, which is blocked meanwhile and read through a signalfd (a
// multithreaded caller must block SIGWINCH in its other threads too).
// The caller must close its own copies of the slave, or the hang-up never comes.
class TerminalRelay {
 public:
  explicit TerminalRelay(UniqueFd master, int in = STDIN_FILENO, int out = STDOUT_FILENO);
  ~TerminalRelay();
  TerminalRelay(const TerminalRelay&) = delete;
  TerminalRelay& operator=(const TerminalRelay&) = delete;

  // Copies until the master hangs up (all slave fds closed) and returns once output is drained.
  // EOF on stdin stops reading stdin; output keeps flowing.
  void run();
  // Copies our terminal's size onto the pty (no-op without a terminal on stdin/stdout).
  void resize();

 private:
  void restore() noexcept;
  void pump_input(std::string& pending);
  void flush_input(std::string& pending);
  bool pump_output();

  UniqueFd master_;
  int in_;
  int out_;
  bool in_open_ = true;
  int size_fd_ = -1;  // the terminal whose size the pty follows
  std::unique_ptr<termios> saved_termios_;  // set while stdin is in raw mode
  UniqueFd winch_fd_;
  bool restore_sigmask_ = false;
  sigset_t old_sigmask_{};
};

}  // namespace deltabox
