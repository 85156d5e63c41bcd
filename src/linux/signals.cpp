#include "linux/signals.hpp"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

#include "util/error.hpp"

namespace deltabox {

namespace {
struct SignalName {
  const char* name;
  int number;
};
constexpr SignalName kSignals[] = {
    {"SIGABRT", SIGABRT}, {"SIGALRM", SIGALRM},   {"SIGBUS", SIGBUS},     {"SIGCHLD", SIGCHLD},
    {"SIGCONT", SIGCONT}, {"SIGFPE", SIGFPE},     {"SIGHUP", SIGHUP},     {"SIGILL", SIGILL},
    {"SIGINT", SIGINT},   {"SIGIO", SIGIO},       {"SIGIOT", SIGIOT},     {"SIGKILL", SIGKILL},
    {"SIGPIPE", SIGPIPE}, {"SIGPOLL", SIGPOLL},   {"SIGPROF", SIGPROF},   {"SIGPWR", SIGPWR},
    {"SIGQUIT", SIGQUIT}, {"SIGSEGV", SIGSEGV},   {"SIGSTKFLT", SIGSTKFLT}, {"SIGSTOP", SIGSTOP},
    {"SIGSYS", SIGSYS},   {"SIGTERM", SIGTERM},   {"SIGTRAP", SIGTRAP},   {"SIGTSTP", SIGTSTP},
    {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},   {"SIGURG", SIGURG},     {"SIGUSR1", SIGUSR1},
    {"SIGUSR2", SIGUSR2}, {"SIGVTALRM", SIGVTALRM}, {"SIGWINCH", SIGWINCH}, {"SIGXCPU", SIGXCPU},
    {"SIGXFSZ", SIGXFSZ},
};
}  // namespace

int parse_signal(std::string_view text) {
  int number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end == text.data() + text.size()) return number;
  std::string name(text);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
  if (name.rfind("SIG", 0) != 0) name = "SIG" + name;
  for (const auto& s : kSignals)
    if (name == s.name) return s.number;
  fail("unknown signal \"{}\"", text);
}

}  // namespace deltabox
