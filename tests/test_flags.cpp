// Go flag / urfave-cli v1 grammar: every form runc's callers use, and Go's exact error texts.
#include <doctest.h>

#include <string>
#include <vector>

#include "cli/flags.hpp"

using namespace std::chrono_literals;
using deltabox::cli::ArgOrder;
using deltabox::cli::FlagKind;
using deltabox::cli::FlagSpec;
using deltabox::cli::parse_flags;
using deltabox::cli::parse_go_duration;
using deltabox::cli::ParsedFlags;
using deltabox::cli::UsageError;

namespace {

const std::vector<FlagSpec> kSpecs = {
    {.name = "bundle",
     .short_name = "b",
     .kind = FlagKind::string,
     .usage = "path to the root of the bundle directory, defaults to the current directory"},
    {.name = "detach",
     .short_name = "d",
     .kind = FlagKind::boolean,
     .usage = "detach from the container's process"},
    {.name = "no-subreaper", .kind = FlagKind::boolean, .usage = "disable the use of the subreaper"},
    {.name = "lsm-mount-context", .kind = FlagKind::string, .usage = "SELinux mount context"},
    {.name = "env", .short_name = "e", .kind = FlagKind::string_list, .usage = "set environment variables"},
    {.name = "preserve-fds", .kind = FlagKind::uinteger, .usage = "pass N additional file descriptors"},
    {.name = "status-fd", .kind = FlagKind::integer, .default_value = "-1", .usage = "criu status fd"},
    {.name = "interval",
     .kind = FlagKind::duration,
     .default_value = "5s",
     .usage = "set the stats collection interval"},
    {.name = "rootless",
     .kind = FlagKind::string,
     .default_value = "auto",
     .usage = "ignore cgroup permission errors"},
    {.name = "log-format", .kind = FlagKind::string, .default_value = "text", .usage = "set the log format"},
    {.name = "force", .short_name = "f", .kind = FlagKind::boolean, .usage = "force"},
    {.name = "criu", .kind = FlagKind::string, .usage = "ignored", .hidden = true},
};

ParsedFlags parse(std::vector<std::string> args, ArgOrder order = ArgOrder::flags_first) {
  return parse_flags(kSpecs, args, order);
}

using Args = std::vector<std::string>;

}  // namespace

TEST_CASE("flags: string flag in every Go spelling") {
  for (const Args& args :
       {Args{"--bundle", "dir"}, Args{"--bundle=dir"}, Args{"-bundle", "dir"}, Args{"-bundle=dir"},
        Args{"-b", "dir"}, Args{"--b", "dir"}, Args{"-b=dir"}, Args{"--b=dir"}}) {
    CAPTURE(args.front());
    const ParsedFlags flags = parse(args);
    CHECK(flags.has("bundle"));
    CHECK(flags.has("b"));
    CHECK(flags.get_string("bundle") == "dir");
    CHECK(flags.get_string("b") == "dir");
    CHECK(flags.positional.empty());
  }
}

TEST_CASE("flags: a value is taken verbatim, even when it looks like a flag or is empty") {
  CHECK(parse({"--bundle", "-d"}).get_string("bundle") == "-d");
  CHECK(parse({"--bundle", "--"}).get_string("bundle") == "--");
  CHECK(parse({"--bundle="}).get_string("bundle").empty());
  CHECK(parse({"--bundle="}).has("bundle"));
  CHECK(parse({"--bundle=a=b"}).get_string("bundle") == "a=b");
}

TEST_CASE("flags: bool forms and Go's ParseBool literals") {
  CHECK(parse({"--detach"}).get_bool("detach"));
  CHECK(parse({"-d"}).get_bool("detach"));
  CHECK(parse({"--d"}).get_bool("d"));
  CHECK(parse({"--detach=true"}).get_bool("detach"));
  CHECK_FALSE(parse({"-d=false"}).get_bool("detach"));
  CHECK(parse({"-d=false"}).has("detach"));
  for (const char* yes : {"1", "t", "T", "TRUE", "true", "True"})
    CHECK(parse({std::string("-d=") + yes}).get_bool("d"));
  for (const char* no : {"0", "f", "F", "FALSE", "false", "False"})
    CHECK_FALSE(parse({std::string("-d=") + no}).get_bool("d"));
  CHECK_FALSE(parse({}).get_bool("detach"));
  CHECK_FALSE(parse({}).has("detach"));
}

TEST_CASE("flags: a bool never consumes the next argument") {
  const ParsedFlags flags = parse({"-d", "false"});
  CHECK(flags.get_bool("detach"));
  CHECK(flags.positional == Args{"false"});
}

TEST_CASE("flags: invalid bool values") {
  CHECK_THROWS_WITH_AS(parse({"-d=x"}), "invalid boolean value \"x\" for -d: parse error", UsageError);
  CHECK_THROWS_WITH_AS(parse({"--detach=yes"}), "invalid boolean value \"yes\" for -detach: parse error",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse({"--detach="}), "invalid boolean value \"\" for -detach: parse error",
                       UsageError);
}

TEST_CASE("flags: the forms runc's callers send") {
  CHECK(parse({"--rootless=true"}).get_string("rootless") == "true");
  CHECK(parse({}).get_string("rootless") == "auto");
  CHECK(parse({"--log-format=json"}).get_string("log-format") == "json");
  CHECK(parse({"--log-format", "json"}).get_string("log-format") == "json");
  const ParsedFlags restore = parse({"-no-subreaper", "--bundle", "/b", "ctr"});
  CHECK(restore.get_bool("no-subreaper"));
  CHECK(restore.positional == Args{"ctr"});
  CHECK(parse({"--interval=5s"}).get_duration("interval") == 5s);
  CHECK(parse({"--interval", "1m30s"}).get_duration("interval") == 90s);
  CHECK(parse({"-interval=100ms"}).get_duration("interval") == 100ms);
  CHECK(parse({}).get_duration("interval") == 5s);
}

TEST_CASE("flags: parsing stops at the first positional argument") {
  const ParsedFlags exec = parse({"-d", "ctr", "sh", "-c", "echo hi", "--bundle", "x"});
  CHECK(exec.get_bool("detach"));
  CHECK_FALSE(exec.has("bundle"));
  CHECK(exec.positional == Args{"ctr", "sh", "-c", "echo hi", "--bundle", "x"});
  CHECK(parse({"-", "-d"}).positional == Args{"-", "-d"});
  CHECK(parse({"ctr", "--foo"}).positional == Args{"ctr", "--foo"});
}

TEST_CASE("flags: -- ends the flags and is consumed once") {
  const ParsedFlags flags = parse({"-d", "--", "--force", "--"});
  CHECK(flags.get_bool("detach"));
  CHECK_FALSE(flags.get_bool("force"));
  CHECK(flags.positional == Args{"--force", "--"});
  CHECK(parse({"--"}).positional.empty());
  CHECK(parse({"ctr", "--", "x"}).positional == Args{"ctr", "--", "x"});
}

TEST_CASE("flags: Go's error texts") {
  CHECK_THROWS_WITH_AS(parse({"--lsm-mount-context"}), "flag needs an argument: -lsm-mount-context",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse({"-b"}), "flag needs an argument: -b", UsageError);
  CHECK_THROWS_WITH_AS(parse({"-foo"}), "flag provided but not defined: -foo", UsageError);
  CHECK_THROWS_WITH_AS(parse({"--foo=bar", "x"}), "flag provided but not defined: -foo", UsageError);
  CHECK_THROWS_WITH_AS(parse({"---x"}), "bad flag syntax: ---x", UsageError);
  CHECK_THROWS_WITH_AS(parse({"-=x"}), "bad flag syntax: -=x", UsageError);
  CHECK_THROWS_WITH_AS(parse({"--=x"}), "bad flag syntax: --=x", UsageError);
  CHECK_THROWS_AS(parse({"-foo"}), deltabox::Error);
}

TEST_CASE("flags: integers follow strconv.ParseInt/ParseUint with base 0") {
  CHECK(parse({}).get_int("status-fd") == -1);
  CHECK(parse({"--status-fd=0x10"}).get_int("status-fd") == 16);
  CHECK(parse({"--status-fd=-0o17"}).get_int("status-fd") == -15);
  CHECK(parse({"--status-fd=+5"}).get_int("status-fd") == 5);
  CHECK(parse({"--status-fd", "-5"}).get_int("status-fd") == -5);
  CHECK(parse({"--status-fd=010"}).get_int("status-fd") == 8);
  CHECK(parse({"--status-fd=0b101"}).get_int("status-fd") == 5);
  CHECK(parse({"--status-fd=1_000"}).get_int("status-fd") == 1000);
  CHECK(parse({"--status-fd=0x_1F"}).get_int("status-fd") == 31);
  CHECK(parse({"--status-fd=-9223372036854775808"}).get_int("status-fd") == INT64_MIN);
  CHECK(parse({"--status-fd=9223372036854775807"}).get_int("status-fd") == INT64_MAX);
  CHECK(parse({"--preserve-fds", "3"}).get_uint("preserve-fds") == 3);
  CHECK(parse({}).get_uint("preserve-fds") == 0);
  CHECK(parse({"--preserve-fds=18446744073709551615"}).get_uint("preserve-fds") == UINT64_MAX);

  CHECK_THROWS_WITH_AS(parse({"--preserve-fds=abc"}),
                       "invalid value \"abc\" for flag -preserve-fds: parse error", UsageError);
  CHECK_THROWS_WITH_AS(parse({"--preserve-fds=-1"}),
                       "invalid value \"-1\" for flag -preserve-fds: parse error", UsageError);
  CHECK_THROWS_WITH_AS(parse({"--preserve-fds="}), "invalid value \"\" for flag -preserve-fds: parse error",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse({"--preserve-fds=18446744073709551616"}),
                       "invalid value \"18446744073709551616\" for flag -preserve-fds: value out of range",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse({"--status-fd=9223372036854775808"}),
                       "invalid value \"9223372036854775808\" for flag -status-fd: value out of range",
                       UsageError);
  for (const char* bad : {"1__0", "_1", "1_", "08", "0x", "1.5", " 1", "0x1g"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(
        parse({std::string("--status-fd=") + bad}),
        ("invalid value \"" + std::string(bad) + "\" for flag -status-fd: parse error").c_str(), UsageError);
  }
}

TEST_CASE("flags: Go durations") {
  const std::vector<std::pair<const char*, std::chrono::nanoseconds>> good = {
      {"0", 0ns},
      {"-0", 0ns},
      {"5s", 5s},
      {"1m30s", 90s},
      {"100ms", 100ms},
      {"1.5h", 90min},
      {"-1.5h", -90min},
      {"+5s", 5s},
      {".5s", 500ms},
      {"5.s", 5s},
      {"1h2m3s4ms5us6ns", 1h + 2min + 3s + 4ms + 5us + 6ns},
      {"2\u00b5s", 2us},
      {"2\u03bcs", 2us},
      {"0.0000000001s", 0ns},
      {"9223372036854775807ns", std::chrono::nanoseconds(INT64_MAX)},
      {"-9223372036854775808ns", std::chrono::nanoseconds(INT64_MIN)},
      {"1.000000001s", 1'000'000'001ns},
  };
  for (const auto& entry : good) {
    CAPTURE(entry.first);
    const auto parsed = parse_go_duration(entry.first);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == entry.second);
  }
  for (const char* bad : {"", "5", "s", "-", "+", ".s", "5x", "1e3s", "1..5s", "5 s", "9223372036854775808ns",
                          "3000000h", "1.5", "5S"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_go_duration(bad).has_value());
  }
  CHECK_THROWS_WITH_AS(parse({"--interval=5"}), "invalid value \"5\" for flag -interval: parse error",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse({"--interval", "soon"}),
                       "invalid value \"soon\" for flag -interval: parse error", UsageError);
}

TEST_CASE("flags: repeated flags: lists append, scalars keep the last") {
  CHECK(parse({"-e", "A=1", "-e", "B=2", "-e=C=3"}).get_list("env") == Args{"A=1", "B=2", "C=3"});
  CHECK(parse({"--env=A", "--env", "B"}).get_list("e") == Args{"A", "B"});
  CHECK(parse({}).get_list("env").empty());
  CHECK(parse({"--bundle", "a", "--bundle", "b"}).get_string("bundle") == "b");
  CHECK(parse({"-d", "-d=false"}).get_bool("detach") == false);
}

TEST_CASE("flags: the long and short form of one flag together are refused, as urfave does") {
  CHECK_THROWS_WITH_AS(parse({"-b", "x", "--bundle", "y"}), "Cannot use two forms of the same flag: b bundle",
                       UsageError);
  CHECK_THROWS_WITH_AS(parse({"--env", "A", "-e", "B"}), "Cannot use two forms of the same flag: e env",
                       UsageError);
}

TEST_CASE("flags: -h/--help is a request, not an error") {
  CHECK(parse({"-h"}).help_requested);
  CHECK(parse({"--help", "ctr"}).help_requested);
  CHECK(parse({"-help"}).has("help"));
  CHECK_FALSE(parse({"--help=false"}).help_requested);
  CHECK_FALSE(parse({"ctr", "--help"}).help_requested);
  CHECK_FALSE(parse({}).help_requested);
  // urfave's help is an ordinary bool flag, so the rest of the line is still checked.
  CHECK_THROWS_WITH_AS(parse({"-h", "--foo"}), "flag provided but not defined: -foo", UsageError);
}

TEST_CASE("flags: urfave v1 reordering moves defined flags in front of the arguments") {
  const ParsedFlags del = parse({"ctr", "--force"}, ArgOrder::reorder);
  CHECK(del.get_bool("force"));
  CHECK(del.positional == Args{"ctr"});
  const ParsedFlags create = parse({"ctr", "--bundle", "/b", "-d"}, ArgOrder::reorder);
  CHECK(create.get_string("bundle") == "/b");
  CHECK(create.get_bool("detach"));
  CHECK(create.positional == Args{"ctr"});
  // Unknown dash-arguments stay where they are ("kill ctr -9" style), and "--" stops reordering.
  CHECK(parse({"ctr", "-9"}, ArgOrder::reorder).positional == Args{"ctr", "-9"});
  CHECK(parse({"ctr", "--", "--force"}, ArgOrder::reorder).positional == Args{"ctr", "--", "--force"});
  // urfave's quirk: a bool without '=' drags the next plain argument in front with it.
  CHECK(parse({"--force", "a", "b"}, ArgOrder::reorder).positional == Args{"a", "b"});
  CHECK(parse({"x", "--force", "a"}, ArgOrder::reorder).positional == Args{"a", "x"});
  CHECK(parse({"ctr", "--force"}).positional == Args{"ctr", "--force"});
}

TEST_CASE("flags: accessors reject programming errors") {
  const ParsedFlags flags = parse({"--status-fd=7"});
  CHECK(flags.get_string("status-fd") == "7");
  CHECK(flags.get_string("interval") == "5s");
  CHECK_THROWS_AS(flags.get_bool("nope"), deltabox::Error);
  CHECK_THROWS_AS(flags.has("nope"), deltabox::Error);
  CHECK_THROWS_AS(flags.get_int("bundle"), deltabox::Error);
  CHECK_THROWS_AS(flags.get_string("env"), deltabox::Error);
  CHECK_THROWS_AS(flags.get_list("bundle"), deltabox::Error);
  const std::vector<FlagSpec> broken = {{.name = "n", .kind = FlagKind::integer, .default_value = "ten"}};
  CHECK_THROWS_AS(parse_flags(broken, Args{}).get_int("n"), deltabox::Error);
}

TEST_CASE("flags: help lines are aligned like urfave's tabwriter output") {
  const std::vector<FlagSpec> specs = {
      kSpecs[0],
      kSpecs[1],
      kSpecs[4],
      kSpecs[5],
      kSpecs[7],
      kSpecs[8],
      kSpecs[11],
      {.name = "pid-file", .kind = FlagKind::string, .value_name = "path", .usage = "write the pid to path "},
  };
  CHECK(deltabox::cli::format_flag_help(specs) ==
        "   --bundle value, -b value  path to the root of the bundle directory, defaults to the current "
        "directory\n"
        "   --detach, -d              detach from the container's process\n"
        "   --env value, -e value     set environment variables\n"
        "   --preserve-fds value      pass N additional file descriptors (default: 0)\n"
        "   --interval value          set the stats collection interval (default: 5s)\n"
        "   --rootless value          ignore cgroup permission errors (default: \"auto\")\n"
        "   --pid-file path           write the pid to path\n");
  CHECK(deltabox::cli::format_flag_help(std::vector<FlagSpec>{}).empty());
}
