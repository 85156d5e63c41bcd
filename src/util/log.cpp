#include "util/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace deltabox::log {
namespace {

constexpr char kLowerHex[] = "0123456789abcdef";

// ---- UTF-8, decoded the way Go's utf8.DecodeRuneInString does -----------------------------

struct Rune {
  char32_t value;
  size_t width;
  bool valid;
};

bool continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Go rejects overlong forms, surrogates and values above U+10FFFF; an invalid sequence counts
// as one byte so that the caller can escape exactly that byte.
Rune decode_rune(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c0 = b(0);
  if (c0 < 0x80) return {c0, 1, true};
  const Rune invalid{0xFFFD, 1, false};
  size_t width = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    width = 2;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    width = 3;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    width = 4;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;
  } else {
    return invalid;
  }
  if (s.size() < width || b(1) < lo || b(1) > hi) return invalid;
  char32_t value = c0 & (0xFF >> (width + 1));
  for (size_t i = 1; i < width; ++i) {
    if (!continuation(b(i))) return invalid;
    value = (value << 6) | (b(i) & 0x3F);
  }
  return {value, width, true};
}

// Go's unicode.IsPrint needs the Unicode tables; this covers what shows up in paths and error
// messages: C1 controls, non-ASCII spaces, format characters and private use are not printable.
bool is_print_non_ascii(char32_t r) {
  return !((r >= 0x80 && r <= 0xA0) || r == 0xAD || (r >= 0x2000 && r <= 0x200F) ||
           (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F) || r == 0x3000 ||
           (r >= 0xE000 && r <= 0xF8FF) || r == 0xFEFF || (r >= 0xFFF9 && r <= 0xFFFB));
}

void append_hex(std::string& out, const char* prefix, uint32_t value, int digits) {
  out += prefix;
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kLowerHex[(value >> shift) & 0xF];
}

// The backslash escapes Go shares between strconv.Quote and encoding/json; strconv adds \a, \v.
const char* short_escape(char32_t r, bool with_bell_and_vtab) {
  switch (r) {
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\a':
      return with_bell_and_vtab ? "\\a" : nullptr;
    case '\v':
      return with_bell_and_vtab ? "\\v" : nullptr;
    default:
      return nullptr;
  }
}

void append_go_escaped_rune(std::string& out, char32_t r, std::string_view raw) {
  if (r == '"' || r == '\\') {
    out += '\\';
    out += static_cast<char>(r);
  } else if (r >= 0x80 ? is_print_non_ascii(r) : (r >= 0x20 && r < 0x7F)) {
    out += raw;
  } else if (const char* escape = short_escape(r, true)) {
    out += escape;
  } else if (r < 0x80) {
    append_hex(out, "\\x", r, 2);
  } else if (r < 0x10000) {
    append_hex(out, "\\u", r, 4);
  } else {
    append_hex(out, "\\U", r, 8);
  }
}

// ---- encoding/json string escaping (json.Encoder with SetEscapeHTML(true), logrus' default) --

// Go's htmlSafeSet: printable ASCII other than the quote, backslash and <, >, &.
bool json_plain_ascii(char32_t r) {
  return r >= 0x20 && r < 0x80 && r != '"' && r != '\\' && r != '<' && r != '>' && r != '&';
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  while (!s.empty()) {
    const Rune r = decode_rune(s);
    if (!r.valid) {
      out += "\\ufffd";
    } else if (json_plain_ascii(r.value) || (r.value >= 0x80 && r.value != 0x2028 && r.value != 0x2029)) {
      out.append(s.substr(0, r.width));
    } else if (r.value == '"' || r.value == '\\') {
      out += '\\';
      out += static_cast<char>(r.value);
    } else if (const char* escape = short_escape(r.value, false)) {
      out += escape;
    } else {
      append_hex(out, "\\u", r.value, 4);  // other controls, <, >, &, U+2028, U+2029
    }
    s.remove_prefix(r.width);
  }
  out += '"';
}

// ---- logrus record pieces --------------------------------------------------------------------

// logrus' Level.String(): note "warning", not "warn".
std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warning";
    case Level::error:
      return "error";
  }
  return "error";
}

// Go's time.RFC3339 layout "2006-01-02T15:04:05Z07:00" in local time, as logrus stamps records.
std::string rfc3339(std::time_t when) {
  struct tm tm {};
  ::localtime_r(&when, &tm);
  std::string out = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  const long offset_minutes = tm.tm_gmtoff / 60;
  if (offset_minutes == 0) return out + 'Z';
  const long magnitude = std::labs(offset_minutes);
  return out + fmt::format("{}{:02}:{:02}", offset_minutes < 0 ? '-' : '+', magnitude / 60, magnitude % 60);
}

// logrus TextFormatter.needsQuoting: anything outside this set gets %q.
bool needs_quoting(std::string_view text) {
  for (const char c : text) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_' || c == '/' || c == '@' || c == '^' || c == '+';
    if (!plain) return true;
  }
  return false;
}

void append_text_field(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ' ';
  out += key;
  out += '=';
  if (needs_quoting(value)) {
    out += go_quote(value);
  } else {
    out += value;
  }
}

std::string text_line(Level level, std::string_view msg, std::time_t when) {
  std::string out;
  append_text_field(out, "time", rfc3339(when));
  append_text_field(out, "level", level_name(level));
  // logrus leaves the msg key out entirely for an empty message.
  if (!msg.empty()) append_text_field(out, "msg", msg);
  out += '\n';
  return out;
}

// JSONFormatter encodes a Go map, so the keys come out sorted: level, msg, time.
std::string json_line(Level level, std::string_view msg, std::time_t when) {
  std::string out = "{\"level\":";
  append_json_string(out, level_name(level));
  out += ",\"msg\":";
  append_json_string(out, msg);
  out += ",\"time\":";
  append_json_string(out, rfc3339(when));
  out += "}\n";
  return out;
}

size_t rune_count(std::string_view s) {
  size_t n = 0;
  for (const char c : s) n += !continuation(static_cast<unsigned char>(c));
  return n;
}

// ---- where records go ------------------------------------------------------------------------

// logrus measures the "[0000]" of terminal lines from its package initialisation.
const auto g_start = std::chrono::steady_clock::now();

struct Output {
  int fd;
  bool terminal;  // logrus colors text records when its output is a terminal
};

struct Sink {
  UniqueFd file;  // the --log file, when one was given
  Output log{STDERR_FILENO, false};
  Output stderr_out{STDERR_FILENO, false};
  Format format = Format::text;
  bool debug = false;
};

Sink& sink() {
  static Sink s = [] {
    Sink initial;
    initial.stderr_out.terminal = ::isatty(STDERR_FILENO) == 1;
    initial.log = initial.stderr_out;
    return initial;
  }();
  return s;
}

// One write(2) per line: concurrent runtimes append to the same --log file and O_APPEND only
// keeps whole lines together when each arrives in a single call. Logging never throws.
void write_line(int fd, std::string_view line) {
  while (!line.empty()) {
    const ssize_t n = ::write(fd, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    line.remove_prefix(static_cast<size_t>(n));
  }
}

void emit(const Output& out, Format format, Level level, std::string_view msg) {
  if (format == Format::text && out.terminal) {
    const auto elapsed = std::chrono::steady_clock::now() - g_start;
    const long seconds = static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count());
    write_line(out.fd, format_terminal_line(level, msg, seconds));
  } else {
    write_line(out.fd, format_line(format, level, msg, std::time(nullptr)));
  }
}

// Podman reads the --log file with ONE json.Unmarshal of the whole file (libpod/oci_util.go
// ociError); any line before the error breaks that parse and podman falls back to a raw,
// unhelpful message. So at default verbosity a JSON log file only receives errors, and the
// lesser records a real runc would add there go to stderr as text instead. With --debug the
// user asked for everything in the log, so nothing is diverted.
bool diverted_to_stderr(const Sink& s, Level level) {
  return s.file && s.format == Format::json && !s.debug && level != Level::error;
}

}  // namespace

std::string go_quote(std::string_view s) {
  std::string out = "\"";
  while (!s.empty()) {
    const Rune r = decode_rune(s);
    if (r.valid) {
      append_go_escaped_rune(out, r.value, s.substr(0, r.width));
    } else {
      append_hex(out, "\\x", static_cast<unsigned char>(s[0]), 2);
    }
    s.remove_prefix(r.width);
  }
  out += '"';
  return out;
}

std::string format_line(Format format, Level level, std::string_view msg, std::time_t when) {
  return format == Format::json ? json_line(level, msg, when) : text_line(level, msg, when);
}

std::string format_terminal_line(Level level, std::string_view msg, long seconds_since_start) {
  static constexpr int kColor[] = {37, 36, 33, 31};  // gray, blue, yellow, red
  static constexpr std::string_view kTag[] = {"DEBU", "INFO", "WARN", "ERRO"};
  const auto index = static_cast<size_t>(level);
  if (msg.ends_with('\n')) msg.remove_suffix(1);  // logrus trims one, like the stdlib log package
  const size_t pad = 44 - std::min<size_t>(44, rune_count(msg));
  // Go's "%-44s " pads the message, and logrus ends the line after that space.
  return fmt::format("\x1b[{}m{}\x1b[0m[{:04}] {}{} \n", kColor[index], kTag[index], seconds_since_start, msg,
                     std::string(pad, ' '));
}

Format parse_format(std::string_view name) {
  if (name == "text" || name.empty()) return Format::text;
  if (name == "json") return Format::json;
  throw Error(fmt::format("invalid log-format: {}", name));
}

void configure(const std::string& path, Format format, bool debug) {
  Sink& s = sink();
  s.stderr_out.terminal = ::isatty(STDERR_FILENO) == 1;  // fd 2 may have been redirected since
  if (path.empty()) {
    s.file.reset();
    s.log = s.stderr_out;
  } else {
    UniqueFd fd(::open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644));
    if (!fd) throw_errno(fmt::format("open {}", path));
    s.log = {fd.get(), ::isatty(fd.get()) == 1};
    s.file = std::move(fd);
  }
  s.format = format;
  s.debug = debug;
}

bool enabled(Level level) { return level != Level::debug || sink().debug; }

void write(Level level, std::string_view msg) {
  const Sink& s = sink();
  if (!enabled(level)) return;
  if (diverted_to_stderr(s, level)) {
    emit(s.stderr_out, Format::text, level, msg);
  } else {
    emit(s.log, s.format, level, msg);
  }
}

void fatal(std::string_view msg) {
  error(msg);
  if (sink().file) write_line(STDERR_FILENO, std::string(msg) + '\n');
}

}  // namespace deltabox::log
