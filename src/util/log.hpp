#pragma once
// Logging that is byte-compatible with runc's logrus output, because containerd and podman parse
// the --log file and users grep the stderr lines.
#include <ctime>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace deltabox::log {

enum class Level { debug, info, warn, error };
enum class Format { text, json };

// "text" or "json" ("" too: runc treats an empty --log-format as text); else
// Error("invalid log-format: X").
Format parse_format(std::string_view name);

// path "" logs to stderr. The file is opened O_CREAT|O_WRONLY|O_APPEND|O_CLOEXEC, 0644; throws
// Error on failure. Until configure() runs, records go to stderr as text at default verbosity.
void configure(const std::string& path, Format format, bool debug);

bool enabled(Level level);
void write(Level level, std::string_view msg);

inline void debug(std::string_view msg) { write(Level::debug, msg); }
inline void info(std::string_view msg) { write(Level::info, msg); }
inline void warn(std::string_view msg) { write(Level::warn, msg); }
inline void error(std::string_view msg) { write(Level::error, msg); }

// fmt-style overloads; the message is only formatted when the level is enabled.
template <typename... Args>
void logf(Level level, fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(level)) write(level, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
  requires(sizeof...(Args) > 0)
void debug(fmt::format_string<Args...> format, Args&&... args) {
  logf(Level::debug, format, std::forward<Args>(args)...);
}
template <typename... Args>
  requires(sizeof...(Args) > 0)
void info(fmt::format_string<Args...> format, Args&&... args) {
  logf(Level::info, format, std::forward<Args>(args)...);
}
template <typename... Args>
  requires(sizeof...(Args) > 0)
void warn(fmt::format_string<Args...> format, Args&&... args) {
  logf(Level::warn, format, std::forward<Args>(args)...);
}
template <typename... Args>
  requires(sizeof...(Args) > 0)
void error(fmt::format_string<Args...> format, Args&&... args) {
  logf(Level::error, format, std::forward<Args>(args)...);
}

// runc's fatalWithCode: exactly one error record in the log and, when the log is a file, the
// plain message on stderr too (a user running by hand sees it). The caller exits.
void fatal(std::string_view msg);

// One record as logrus renders it for a non-terminal, '\n' included:
//   text: time="2026-11-25T10:31:23Z" level=error msg="container does not exist"
//   json: {"level":"error","msg":"container does not exist","time":"2026-11-25T10:31:23Z"}
// The time is local, RFC 3339 with seconds ("Z" when the offset is zero).
std::string format_line(Format format, Level level, std::string_view msg, std::time_t when);
// logrus' colored layout when the output is a terminal: "\x1b[31mERRO\x1b[0m[0000] msg...".
std::string format_terminal_line(Level level, std::string_view msg, long seconds_since_start);

// Go's strconv.Quote (%q): logrus quotes text values with it and the Go flag package quotes
// rejected values with it. Non-ASCII printability is approximated (see log.cpp).
std::string go_quote(std::string_view s);

}  // namespace deltabox::log
