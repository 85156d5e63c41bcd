#include "cli/flags.hpp"

#include <algorithm>
#include <limits>

#include "util/log.hpp"

namespace deltabox::cli {
namespace {

using detail::FlagValues;
using log::go_quote;

// ---- Go strconv / time parsers ---------------------------------------------------------------

enum class NumStatus { ok, syntax, range };

template <typename T>
struct Parsed {
  T value{};
  NumStatus status = NumStatus::syntax;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
char lower(char c) { return static_cast<char>(c | ('x' - 'X')); }

// strconv.underscoreOK: with base prefix 0, '_' may only separate digits.
bool underscore_ok(std::string_view s) {
  char saw = '^';  // '^' start, '0' digit or base prefix, '_' underscore, '!' anything else
  size_t i = 0;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  bool hex = false;
  if (s.size() >= 2 && s[0] == '0' && (lower(s[1]) == 'b' || lower(s[1]) == 'o' || lower(s[1]) == 'x')) {
    i = 2;
    saw = '0';
    hex = lower(s[1]) == 'x';
  }
  for (; i < s.size(); ++i) {
    if (is_digit(s[i]) || (hex && lower(s[i]) >= 'a' && lower(s[i]) <= 'f')) {
      saw = '0';
    } else if (s[i] == '_') {
      if (saw != '0') return false;
      saw = '_';
    } else {
      if (saw == '_') return false;
      saw = '!';
    }
  }
  return saw != '_';
}

// strconv.ParseUint(s, 0, 64), including where it reports range before syntax.
Parsed<uint64_t> go_parse_uint(std::string_view s) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  if (s.empty()) return {};
  const std::string_view original = s;
  unsigned base = 10;
  if (s[0] == '0') {
    const char prefix = s.size() >= 3 ? lower(s[1]) : '\0';
    base = prefix == 'b' ? 2 : prefix == 'o' ? 8 : prefix == 'x' ? 16 : 8;
    s.remove_prefix(base == 8 && prefix != 'o' ? 1 : 2);
  }
  bool underscores = false;
  uint64_t n = 0;
  for (const char c : s) {
    unsigned digit;
    if (c == '_') {
      underscores = true;
      continue;
    } else if (is_digit(c)) {
      digit = static_cast<unsigned>(c - '0');
    } else if (lower(c) >= 'a' && lower(c) <= 'z') {
      digit = static_cast<unsigned>(lower(c) - 'a' + 10);
    } else {
      return {};
    }
    if (digit >= base) return {};
    if (n > (kMax - digit) / base) return {kMax, NumStatus::range};
    n = n * base + digit;
  }
  if (underscores && !underscore_ok(original)) return {};
  return {n, NumStatus::ok};
}

// strconv.ParseInt(s, 0, 64): a sign, then ParseUint.
Parsed<int64_t> go_parse_int(std::string_view s) {
  if (s.empty()) return {};
  const bool negative = s[0] == '-';
  if (s[0] == '-' || s[0] == '+') s.remove_prefix(1);
  const Parsed<uint64_t> u = go_parse_uint(s);
  if (u.status == NumStatus::syntax) return {};
  constexpr uint64_t kCutoff = uint64_t{1} << 63;
  if (u.status == NumStatus::range || (!negative && u.value >= kCutoff) || u.value > kCutoff) {
    return {negative ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max(),
            NumStatus::range};
  }
  if (negative)
    return {u.value == kCutoff ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(u.value),
            NumStatus::ok};
  return {static_cast<int64_t>(u.value), NumStatus::ok};
}

constexpr uint64_t kDurationLimit = uint64_t{1} << 63;

// time.leadingInt: consumes digits; nullopt on overflow past 1<<63.
std::optional<uint64_t> leading_int(std::string_view& s) {
  uint64_t x = 0;
  size_t i = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (x > kDurationLimit / 10) return std::nullopt;
    x = x * 10 + static_cast<uint64_t>(s[i] - '0');
    if (x > kDurationLimit) return std::nullopt;
  }
  s.remove_prefix(i);
  return x;
}

// time.leadingFraction: digits after the point; extra precision is dropped, not an error.
void leading_fraction(std::string_view& s, uint64_t& x, double& scale) {
  bool overflow = false;
  size_t i = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (overflow) continue;
    if (x > (kDurationLimit - 1) / 10) {
      overflow = true;
      continue;
    }
    const uint64_t y = x * 10 + static_cast<uint64_t>(s[i] - '0');
    if (y > kDurationLimit) {
      overflow = true;
      continue;
    }
    x = y;
    scale *= 10;
  }
  s.remove_prefix(i);
}

std::optional<uint64_t> duration_unit(std::string_view unit) {
  if (unit == "ns") return 1;
  if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") return 1'000;
  if (unit == "ms") return 1'000'000;
  if (unit == "s") return 1'000'000'000;
  if (unit == "m") return 60'000'000'000;
  if (unit == "h") return 3'600'000'000'000;
  return std::nullopt;
}

// One "<number><unit>" term of a duration, in nanoseconds; consumes it from s.
std::optional<uint64_t> duration_term(std::string_view& s) {
  if (!(s[0] == '.' || is_digit(s[0]))) return std::nullopt;
  const size_t before = s.size();
  const std::optional<uint64_t> whole = leading_int(s);
  if (!whole) return std::nullopt;
  const bool pre = before != s.size();
  uint64_t fraction = 0;
  double scale = 1;
  bool post = false;
  if (!s.empty() && s[0] == '.') {
    s.remove_prefix(1);
    const size_t at_point = s.size();
    leading_fraction(s, fraction, scale);
    post = at_point != s.size();
  }
  if (!pre && !post) return std::nullopt;
  size_t unit_len = 0;
  while (unit_len < s.size() && s[unit_len] != '.' && !is_digit(s[unit_len])) ++unit_len;
  const std::optional<uint64_t> unit = duration_unit(s.substr(0, unit_len));
  s.remove_prefix(unit_len);
  if (!unit || *whole > kDurationLimit / *unit) return std::nullopt;
  uint64_t ns = *whole * *unit;
  if (fraction > 0) {
    // Go uses float64 here too, to stay nanosecond-exact for fractions of hours.
    ns += static_cast<uint64_t>(static_cast<double>(fraction) * (static_cast<double>(*unit) / scale));
    if (ns > kDurationLimit) return std::nullopt;
  }
  return ns;
}

std::optional<std::string_view> num_rejection(NumStatus status) {
  if (status == NumStatus::ok) return std::nullopt;
  return status == NumStatus::range ? "value out of range" : "parse error";
}

// The reason Go's flag.Value.Set gives for a bad value, nullopt when the value is fine. Bools are
// checked by parse_one, which words their error differently.
std::optional<std::string_view> rejection(FlagKind kind, std::string_view value) {
  switch (kind) {
    case FlagKind::integer:
      return num_rejection(go_parse_int(value).status);
    case FlagKind::uinteger:
      return num_rejection(go_parse_uint(value).status);
    case FlagKind::duration:
      return parse_go_duration(value) ? std::nullopt : std::optional<std::string_view>("parse error");
    case FlagKind::boolean:
    case FlagKind::string:
    case FlagKind::string_list:
      return std::nullopt;
  }
  return std::nullopt;
}

// ---- the flag set ----------------------------------------------------------------------------

bool named(const FlagSpec& spec, std::string_view name) {
  return !name.empty() && (spec.name == name || spec.short_name == name);
}

template <typename Flags>
auto* find(Flags& flags, std::string_view name) {
  auto it = std::find_if(flags.begin(), flags.end(), [&](const auto& f) { return named(f.spec, name); });
  return it == flags.end() ? nullptr : &*it;
}

// urfave/cli adds "help, h" to every command's flags unless the command defines its own.
std::vector<FlagValues> make_flag_set(std::span<const FlagSpec> specs) {
  std::vector<FlagValues> flags;
  for (const FlagSpec& spec : specs) flags.push_back({spec, {}});
  if (!find(flags, "help") && !find(flags, "h")) {
    flags.push_back({FlagSpec{.name = "help", .short_name = "h", .usage = "show help"}, {}});
  }
  return flags;
}

// urfave/cli v1.22 argIsFlag: up to three leading dashes and any "=value" are ignored.
bool names_defined_flag(const std::vector<FlagValues>& flags, std::string_view arg) {
  if (arg == "-" || !arg.starts_with('-')) return false;
  if (arg.starts_with("--")) arg.remove_prefix(2);
  if (arg.starts_with('-')) arg.remove_prefix(1);
  return find(flags, arg.substr(0, arg.find('='))) != nullptr;
}

// urfave/cli v1.22 reorderArgs, quirks included: a flag without "=" drags the next argument
// that does not start with '-' along as its value, even for bools.
std::vector<std::string> reorder_args(const std::vector<FlagValues>& flags,
                                      std::span<const std::string> args) {
  std::vector<std::string> front, rest;
  bool next_may_be_value = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      rest.insert(rest.end(), args.begin() + static_cast<ptrdiff_t>(i), args.end());
      break;
    }
    if (next_may_be_value && !arg.starts_with('-')) {
      next_may_be_value = false;
      front.push_back(arg);
    } else if (names_defined_flag(flags, arg)) {
      front.push_back(arg);
      next_may_be_value = arg.find('=') == std::string::npos;
    } else {
      rest.push_back(arg);
    }
  }
  front.insert(front.end(), rest.begin(), rest.end());
  return front;
}

void record(FlagValues& flag, std::string_view name_used, std::string value) {
  (name_used == flag.spec.name ? flag.given_as_name : flag.given_as_short) = true;
  flag.given.push_back(std::move(value));
}

// Go's FlagSet.parseOne for an argument known to start with '-' and not to be "-" or "--".
// Returns the index of the next unparsed argument.
size_t parse_one(std::vector<FlagValues>& flags, std::span<const std::string> args, size_t i) {
  const std::string& arg = args[i++];
  std::string_view name = std::string_view(arg).substr(arg[1] == '-' ? 2 : 1);
  if (name.empty() || name[0] == '-' || name[0] == '=') throw UsageError("bad flag syntax: " + arg);
  std::optional<std::string_view> value;
  if (const size_t eq = name.find('=', 1); eq != std::string_view::npos) {
    value = name.substr(eq + 1);
    name = name.substr(0, eq);
  }
  FlagValues* flag = find(flags, name);
  if (!flag) throw UsageError(fmt::format("flag provided but not defined: -{}", name));
  if (flag->spec.kind == FlagKind::boolean) {
    // A bool never takes the next argument: "-d false" is -d plus a positional "false".
    const std::optional<bool> on = parse_go_bool(value.value_or("true"));
    if (!on)
      throw UsageError(fmt::format("invalid boolean value {} for -{}: parse error", go_quote(*value), name));
    record(*flag, name, *on ? "true" : "false");
    return i;
  }
  if (!value) {
    if (i == args.size()) throw UsageError(fmt::format("flag needs an argument: -{}", name));
    value = args[i++];
  }
  if (const auto reason = rejection(flag->spec.kind, *value)) {
    throw UsageError(fmt::format("invalid value {} for flag -{}: {}", go_quote(*value), name, *reason));
  }
  record(*flag, name, std::string(*value));
  return i;
}

// urfave/cli normalizeFlags: "-b x --bundle y" is refused rather than silently merged.
void check_single_form(const std::vector<FlagValues>& flags) {
  for (const FlagValues& flag : flags) {
    if (flag.given_as_name && flag.given_as_short) {
      throw UsageError(
          fmt::format("Cannot use two forms of the same flag: {} {}", flag.spec.short_name, flag.spec.name));
    }
  }
}

const std::string& scalar_text(const FlagValues& flag) {
  return flag.given.empty() ? flag.spec.default_value : flag.given.back();
}

// Values from the command line were validated while parsing, so a failure here can only come
// from a malformed default_value: a programming error.
template <typename T, typename Parse>
T typed_value(const FlagValues& flag, Parse parse) {
  const std::string& text = scalar_text(flag);
  if (text.empty()) return T{};
  const std::optional<T> value = parse(text);
  if (!value) fail("invalid default value {} for flag -{}", go_quote(text), flag.spec.name);
  return *value;
}

template <typename T>
std::optional<T> if_ok(Parsed<T> parsed) {
  return parsed.status == NumStatus::ok ? std::optional<T>(parsed.value) : std::nullopt;
}

// ---- help ------------------------------------------------------------------------------------

// urfave prefixedNames: one dash for one-letter names, two otherwise.
std::string help_names(const FlagSpec& spec) {
  std::string placeholder = spec.value_name;
  if (placeholder.empty() && spec.kind != FlagKind::boolean) placeholder = "value";
  const auto one = [&](const std::string& name) {
    return (name.size() == 1 ? "-" : "--") + name + (placeholder.empty() ? "" : " " + placeholder);
  };
  return spec.short_name.empty() ? one(spec.name) : one(spec.name) + ", " + one(spec.short_name);
}

// urfave stringifyFlag: numbers always show their default, strings only when non-empty (%q).
std::string help_default(const FlagSpec& spec) {
  const std::string& value = spec.default_value;
  switch (spec.kind) {
    case FlagKind::boolean:
      return "";
    case FlagKind::string:
    case FlagKind::string_list:
      return value.empty() ? "" : " (default: " + go_quote(value) + ")";
    case FlagKind::integer:
    case FlagKind::uinteger:
      return " (default: " + (value.empty() ? "0" : value) + ")";
    case FlagKind::duration:
      return " (default: " + (value.empty() ? "0s" : value) + ")";
  }
  return "";
}

std::string_view trim_spaces(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\n\r\v\f");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\n\r\v\f") - first + 1);
}

}  // namespace

std::optional<bool> parse_go_bool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") return false;
  return std::nullopt;
}

// time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or a bare "0".
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return std::nullopt;
  uint64_t total = 0;
  while (!s.empty()) {
    const std::optional<uint64_t> term = duration_term(s);
    if (!term) return std::nullopt;
    total += *term;
    if (total > kDurationLimit) return std::nullopt;
  }
  if (negative) {
    return std::chrono::nanoseconds(total == kDurationLimit ? std::numeric_limits<int64_t>::min()
                                                            : -static_cast<int64_t>(total));
  }
  if (total == kDurationLimit) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

ParsedFlags parse_flags(std::span<const FlagSpec> specs, std::span<const std::string> args, ArgOrder order) {
  ParsedFlags out;
  out.flags_ = make_flag_set(specs);
  std::vector<std::string> argv = order == ArgOrder::reorder
                                      ? reorder_args(out.flags_, args)
                                      : std::vector<std::string>(args.begin(), args.end());
  size_t i = 0;
  while (i < argv.size() && argv[i].size() >= 2 && argv[i][0] == '-') {
    if (argv[i] == "--") {
      ++i;
      break;
    }
    i = parse_one(out.flags_, argv, i);
  }
  out.positional.assign(std::make_move_iterator(argv.begin() + static_cast<ptrdiff_t>(i)),
                        std::make_move_iterator(argv.end()));
  check_single_form(out.flags_);
  const FlagValues* help = find(out.flags_, "help");
  if (!help) help = find(out.flags_, "h");
  out.help_requested = help->spec.kind == FlagKind::boolean && out.get_bool(help->spec.name);
  return out;
}

const FlagValues& ParsedFlags::lookup(std::string_view name) const {
  const FlagValues* flag = find(flags_, name);
  if (!flag) fail("flag -{} is not defined", name);
  return *flag;
}

const FlagValues& ParsedFlags::lookup(std::string_view name, FlagKind kind) const {
  const FlagValues& flag = lookup(name);
  if (flag.spec.kind != kind) fail("flag -{} is read as the wrong kind", name);
  return flag;
}

bool ParsedFlags::has(std::string_view name) const { return !lookup(name).given.empty(); }

bool ParsedFlags::get_bool(std::string_view name) const {
  return typed_value<bool>(lookup(name, FlagKind::boolean), parse_go_bool);
}

std::string ParsedFlags::get_string(std::string_view name) const {
  const FlagValues& flag = lookup(name);
  if (flag.spec.kind == FlagKind::string_list) fail("flag -{} is a list", name);
  return scalar_text(flag);
}

std::vector<std::string> ParsedFlags::get_list(std::string_view name) const {
  return lookup(name, FlagKind::string_list).given;
}

int64_t ParsedFlags::get_int(std::string_view name) const {
  return typed_value<int64_t>(lookup(name, FlagKind::integer),
                              [](std::string_view s) { return if_ok(go_parse_int(s)); });
}

uint64_t ParsedFlags::get_uint(std::string_view name) const {
  return typed_value<uint64_t>(lookup(name, FlagKind::uinteger),
                               [](std::string_view s) { return if_ok(go_parse_uint(s)); });
}

std::chrono::nanoseconds ParsedFlags::get_duration(std::string_view name) const {
  return typed_value<std::chrono::nanoseconds>(lookup(name, FlagKind::duration), parse_go_duration);
}

std::string format_flag_help(std::span<const FlagSpec> specs) {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const FlagSpec& spec : specs) {
    if (spec.hidden) continue;
    std::string names = "   " + help_names(spec);
    width = std::max(width, names.size());
    rows.emplace_back(std::move(names), std::string(trim_spaces(spec.usage + help_default(spec))));
  }
  // Go's tabwriter (padding 2) aligns the usage column two spaces past the widest names cell.
  std::string out;
  for (const auto& [names, usage] : rows) {
    out += names;
    out.append(width + 2 - names.size(), ' ');
    out += usage;
    out += '\n';
  }
  return out;
}

}  // namespace deltabox::cli
