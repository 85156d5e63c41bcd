#pragma once
// Command-line flags with the grammar of Go's `flag` package as urfave/cli v1 drives it (runc
// 1.1/1.2), so every argv runc accepts is accepted here and every rejection reads the same.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace deltabox::cli {

enum class FlagKind {
  boolean,
  string,
  string_list,  // repeatable; every occurrence is appended
  integer,      // Go strconv.ParseInt(s, 0, 64): sign, 0x/0o/0b/0 prefixes, '_' separators
  uinteger,     // Go strconv.ParseUint(s, 0, 64)
  duration,     // Go time.ParseDuration: "5s", "1m30s", "100ms", "-1.5h"
};

struct FlagSpec {
  std::string name;        // long name, without dashes
  std::string short_name;  // "" or an alias such as "b"
  FlagKind kind = FlagKind::boolean;
  std::string value_name;     // help placeholder; "" means "value" for flags that take one
  std::string default_value;  // text as it would be given on the command line
  std::string usage;
  bool hidden = false;  // accepted but left out of the help
};

// A command line the grammar rejects. what() is Go's text, e.g. "flag provided but not defined:
// -foo"; urfave prints it after "Incorrect Usage: " and runc then exits 1.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message) {}
};

// Where a command's flags may appear.
enum class ArgOrder {
  // Go's flag package (and runc's global flags, exec and ps): parsing stops at the first
  // positional argument, and everything after it is positional, even "-x".
  flags_first,
  // urfave/cli v1's default for commands without SkipArgReorder: arguments that name a defined
  // flag (and the value after one) are moved in front first, so "delete id --force" works.
  reorder,
};

namespace detail {
struct FlagValues {
  FlagSpec spec;
  std::vector<std::string> given;  // raw values in command-line order; "true"/"false" for bools
  bool given_as_name = false;      // seen as -name (urfave rejects -name together with -short)
  bool given_as_short = false;
};
}  // namespace detail

class ParsedFlags;
ParsedFlags parse_flags(std::span<const FlagSpec> specs, std::span<const std::string> args,
                        ArgOrder order = ArgOrder::flags_first);

// Accessors take the long or the short name. Asking for a flag that was not in the specs, or with
// the wrong kind, is a programming error and throws Error.
class ParsedFlags {
 public:
  bool has(std::string_view name) const;  // given explicitly on the command line
  bool get_bool(std::string_view name) const;
  // The last value given, else default_value. Works for every kind but string_list (raw text).
  std::string get_string(std::string_view name) const;
  std::vector<std::string> get_list(std::string_view name) const;  // empty when absent
  int64_t get_int(std::string_view name) const;
  uint64_t get_uint(std::string_view name) const;
  std::chrono::nanoseconds get_duration(std::string_view name) const;

  std::vector<std::string> positional;  // from the first non-flag argument on, or after "--"
  // -h/--help: urfave defines "help, h" as a bool flag on every command, so it is not an error
  // and the rest of the command line is still parsed (and may still fail).
  bool help_requested = false;

 private:
  friend ParsedFlags parse_flags(std::span<const FlagSpec>, std::span<const std::string>, ArgOrder);
  const detail::FlagValues& lookup(std::string_view name) const;
  const detail::FlagValues& lookup(std::string_view name, FlagKind kind) const;
  std::vector<detail::FlagValues> flags_;
};

// urfave/cli v1 help lines, aligned like its tabwriter output, hidden flags left out:
//    --bundle value, -b value  path to the root of the bundle directory, defaults to the current directory
//    --root value              root directory for storage of container state (default: "/run/runc")
std::string format_flag_help(std::span<const FlagSpec> specs);

// Go's parsers, for values that arrive outside flags (e.g. a duration in a config file).
std::optional<bool> parse_go_bool(std::string_view s);                          // strconv.ParseBool
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view s);  // time.ParseDuration

}  // namespace deltabox::cli
