// logrus-compatible records, byte for byte, and the routing that keeps podman's JSON parse whole.
#include <doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace dlog = deltabox::log;  // a plain "log" would clash with ::log from <cmath>

namespace {

// Runs with TZ set, restoring the previous zone afterwards, so times are deterministic.
class ScopedTz {
 public:
  explicit ScopedTz(const char* tz) {
    if (const char* old = std::getenv("TZ")) saved_ = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTz() {
    if (saved_) {
      ::setenv("TZ", saved_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  ScopedTz(const ScopedTz&) = delete;
  ScopedTz& operator=(const ScopedTz&) = delete;

 private:
  std::optional<std::string> saved_;
};

// Points fd 2 at a pipe until finish(), which restores it and returns what was written.
class StderrCapture {
 public:
  StderrCapture() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_end_.reset(fds[0]);
    saved_.reset(::dup(STDERR_FILENO));
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
  }
  ~StderrCapture() { restore(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  std::string finish() {
    restore();
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(read_end_.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  void restore() {
    if (saved_) ::dup2(saved_.get(), STDERR_FILENO);
    saved_.reset();
  }
  deltabox::UniqueFd read_end_;
  deltabox::UniqueFd saved_;
};

// A fresh log file path; the logger is reset to stderr/text when the test ends.
class TempLog {
 public:
  TempLog() {
    char dir[] = "/tmp/deltabox-test-log-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    dir_ = dir;
  }
  ~TempLog() {
    dlog::configure("", dlog::Format::text, false);
    std::filesystem::remove_all(dir_);
  }
  TempLog(const TempLog&) = delete;
  TempLog& operator=(const TempLog&) = delete;

  std::string path() const { return (dir_ / "log.json").string(); }
  std::string contents() const { return deltabox::read_file(path()); }

 private:
  std::filesystem::path dir_;
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    out.push_back(text.substr(start, nl - start));
  }
  CHECK(start == text.size());  // every record ends with '\n'
  return out;
}

// Replaces the record's timestamp with "<time>" once it has been checked to be RFC 3339 with
// seconds and a "Z" or "+hh:mm" zone (std::regex is avoided: GCC 12 warns inside it under ASan).
std::string mask_time(const std::string& line) {
  const bool json = line.starts_with('{');
  const std::string marker = json ? "\"time\":\"" : "time=\"";
  const size_t start = line.find(marker);
  if (start == std::string::npos) return line;
  const size_t begin = start + marker.size();
  const size_t end = line.find('"', begin);
  if (end == std::string::npos) return line;
  const std::string stamp = line.substr(begin, end - begin);
  const std::string shape = "0000-00-00T00:00:00";
  bool ok = stamp.size() == shape.size() + 1 || stamp.size() == shape.size() + 6;
  for (size_t i = 0; ok && i < shape.size(); ++i) {
    ok = shape[i] == '0' ? std::isdigit(static_cast<unsigned char>(stamp[i])) != 0 : stamp[i] == shape[i];
  }
  const std::string zone = ok ? stamp.substr(shape.size()) : "";
  ok = ok && (zone == "Z" || (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':'));
  CHECK_MESSAGE(ok, "bad timestamp in: ", line);
  return line.substr(0, begin) + "<time>" + line.substr(end);
}

constexpr std::time_t kWhen = 1795602683;  // 2026-11-25T10:31:23Z

}  // namespace

TEST_CASE("log: go_quote matches strconv.Quote") {
  CHECK(dlog::go_quote("abc") == "\"abc\"");
  CHECK(dlog::go_quote("") == "\"\"");
  CHECK(dlog::go_quote("say \"hi\" \\o/") == R"("say \"hi\" \\o/")");
  CHECK(dlog::go_quote("a\nb\tc\rd\a\b\f\v") == R"("a\nb\tc\rd\a\b\f\v")");
  CHECK(dlog::go_quote(std::string("\x01\x1f\x7f", 3)) == R"("\x01\x1f\x7f")");
  CHECK(dlog::go_quote(std::string("nul\0", 4)) == R"("nul\x00")");
  CHECK(dlog::go_quote("caf\u00e9 \u65e5\u672c \U0001F600") == "\"caf\u00e9 \u65e5\u672c \U0001F600\"");
  CHECK(dlog::go_quote("\xff\xc3") == R"("\xff\xc3")");
  CHECK(dlog::go_quote("\xed\xa0\x80") == R"("\xed\xa0\x80")");  // a UTF-8 encoded surrogate is invalid
  CHECK(dlog::go_quote("\xc2\xa0|\u2028|\ufeff") == R"("\u00a0|\u2028|\ufeff")");
}

TEST_CASE("log: text records are logrus TextFormatter lines") {
  ScopedTz utc("UTC");
  CHECK(dlog::format_line(dlog::Format::text, dlog::Level::error, "container does not exist", kWhen) ==
        "time=\"2026-11-25T10:31:23Z\" level=error msg=\"container does not exist\"\n");
  CHECK(dlog::format_line(dlog::Format::text, dlog::Level::warn, "x", kWhen) ==
        "time=\"2026-11-25T10:31:23Z\" level=warning msg=x\n");
  CHECK(dlog::format_line(dlog::Format::text, dlog::Level::info, "a-b.c_d/e@f^g+h", kWhen) ==
        "time=\"2026-11-25T10:31:23Z\" level=info msg=a-b.c_d/e@f^g+h\n");
  CHECK(dlog::format_line(dlog::Format::text, dlog::Level::debug, "say \"hi\"\n", kWhen) ==
        "time=\"2026-11-25T10:31:23Z\" level=debug msg=\"say \\\"hi\\\"\\n\"\n");
  CHECK(dlog::format_line(dlog::Format::text, dlog::Level::error, "a:b", kWhen) ==
        "time=\"2026-11-25T10:31:23Z\" level=error msg=\"a:b\"\n");
  // logrus drops the msg key of an empty message.
  CHECK(dlog::format_line(dlog::Format::text, dlog::Level::error, "", kWhen) ==
        "time=\"2026-11-25T10:31:23Z\" level=error\n");
}

TEST_CASE("log: times are local RFC 3339 with a numeric offset") {
  {
    ScopedTz tz("XST-5:30");  // POSIX sign: five and a half hours east of UTC
    CHECK(dlog::format_line(dlog::Format::text, dlog::Level::info, "m", kWhen) ==
          "time=\"2026-11-25T16:01:23+05:30\" level=info msg=m\n");
  }
  {
    ScopedTz tz("XST3");
    CHECK(dlog::format_line(dlog::Format::json, dlog::Level::info, "m", kWhen) ==
          "{\"level\":\"info\",\"msg\":\"m\",\"time\":\"2026-11-25T07:31:23-03:00\"}\n");
  }
}

TEST_CASE("log: json records are logrus JSONFormatter lines") {
  ScopedTz utc("UTC");
  CHECK(dlog::format_line(dlog::Format::json, dlog::Level::error, "container does not exist", kWhen) ==
        "{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"2026-11-25T10:31:23Z\"}\n");
  CHECK(dlog::format_line(dlog::Format::json, dlog::Level::warn, "", kWhen) ==
        "{\"level\":\"warning\",\"msg\":\"\",\"time\":\"2026-11-25T10:31:23Z\"}\n");
  // encoding/json with HTML escaping: <, >, & and U+2028/9 escaped, bad UTF-8 becomes U+FFFD.
  const std::string tricky = "q\"b\\ <x> & \n\t\r\b\f\x01\x7f caf\u00e9 \u2028\u2029 \xff";
  const std::string line = dlog::format_line(dlog::Format::json, dlog::Level::error, tricky, kWhen);
  CHECK(line ==
        "{\"level\":\"error\",\"msg\":\"q\\\"b\\\\ \\u003cx\\u003e \\u0026 \\n\\t\\r\\b\\f\\u0001\x7f "
        "caf\u00e9 \\u2028\\u2029 \\ufffd\",\"time\":\"2026-11-25T10:31:23Z\"}\n");
  const auto parsed = nlohmann::json::parse(line);
  CHECK(parsed.at("level") == "error");
  CHECK(parsed.at("msg") == std::string("q\"b\\ <x> & \n\t\r\b\f\x01\x7f caf\u00e9 \u2028\u2029 \ufffd"));
}

TEST_CASE("log: terminal records use logrus' colored layout") {
  CHECK(dlog::format_terminal_line(dlog::Level::error, "container does not exist", 0) ==
        "\x1b[31mERRO\x1b[0m[0000] container does not exist" + std::string(20, ' ') + " \n");
  CHECK(dlog::format_terminal_line(dlog::Level::warn, "caf\u00e9\n", 12) ==
        "\x1b[33mWARN\x1b[0m[0012] caf\u00e9" + std::string(40, ' ') + " \n");
  const std::string long_msg(50, 'x');
  CHECK(dlog::format_terminal_line(dlog::Level::debug, long_msg, 3) ==
        "\x1b[37mDEBU\x1b[0m[0003] " + long_msg + " \n");
  CHECK(dlog::format_terminal_line(dlog::Level::info, "i", 0).starts_with("\x1b[36mINFO\x1b[0m[0000] i "));
}

TEST_CASE("log: parse_format") {
  CHECK(dlog::parse_format("text") == dlog::Format::text);
  CHECK(dlog::parse_format("json") == dlog::Format::json);
  CHECK(dlog::parse_format("") == dlog::Format::text);
  CHECK_THROWS_WITH_AS(dlog::parse_format("xml"), "invalid log-format: xml", deltabox::Error);
  CHECK_THROWS_AS(dlog::parse_format("JSON"), deltabox::Error);
}

TEST_CASE("log: default config writes text records to stderr") {
  StderrCapture capture;
  dlog::configure("", dlog::Format::text, false);
  dlog::error("container does not exist");
  dlog::warn("careful {}", 42);
  dlog::info("note");
  dlog::debug("hidden {}", 1);
  dlog::fatal("fatal one");
  const std::vector<std::string> got = lines(capture.finish());
  REQUIRE(got.size() == 4);
  CHECK(mask_time(got[0]) == "time=\"<time>\" level=error msg=\"container does not exist\"");
  CHECK(mask_time(got[1]) == "time=\"<time>\" level=warning msg=\"careful 42\"");
  CHECK(mask_time(got[2]) == "time=\"<time>\" level=info msg=note");
  // fatal to stderr: the one log record, no second plain copy.
  CHECK(mask_time(got[3]) == "time=\"<time>\" level=error msg=\"fatal one\"");
  CHECK_FALSE(dlog::enabled(dlog::Level::debug));
}

TEST_CASE("log: a JSON log file gets exactly one line for a failing run") {
  TempLog file;
  StderrCapture capture;
  dlog::configure(file.path(), dlog::Format::json, false);
  dlog::info("starting");
  dlog::warn("cgroup {} is odd", "x");
  dlog::debug("not shown");
  dlog::fatal("container with given ID already exists");
  const std::string err = capture.finish();

  const std::vector<std::string> logged = lines(file.contents());
  REQUIRE(logged.size() == 1);
  CHECK(mask_time(logged[0]) ==
        R"({"level":"error","msg":"container with given ID already exists","time":"<time>"})");
  // podman unmarshals the whole file as one object.
  const auto whole = nlohmann::json::parse(file.contents());
  CHECK(whole.at("msg") == "container with given ID already exists");

  // Lesser records went to stderr as text, then runc's plain copy of the fatal error.
  const std::vector<std::string> on_stderr = lines(err);
  REQUIRE(on_stderr.size() == 3);
  CHECK(mask_time(on_stderr[0]) == "time=\"<time>\" level=info msg=starting");
  CHECK(mask_time(on_stderr[1]) == "time=\"<time>\" level=warning msg=\"cgroup x is odd\"");
  CHECK(on_stderr[2] == "container with given ID already exists");
}

TEST_CASE("log: with --debug everything goes to the log file") {
  TempLog file;
  StderrCapture capture;
  dlog::configure(file.path(), dlog::Format::json, true);
  CHECK(dlog::enabled(dlog::Level::debug));
  dlog::debug("d {}", 1);
  dlog::warn("w");
  dlog::error("e");
  CHECK(capture.finish().empty());
  const std::vector<std::string> logged = lines(file.contents());
  REQUIRE(logged.size() == 3);
  CHECK(logged[0].starts_with(R"({"level":"debug","msg":"d 1","time":")"));
  CHECK(logged[1].starts_with(R"({"level":"warning","msg":"w","time":")"));
  CHECK(logged[2].starts_with(R"({"level":"error","msg":"e","time":")"));
}

TEST_CASE("log: a text log file keeps logrus' levels and appends") {
  TempLog file;
  deltabox::write_file_atomic(file.path(), "earlier line\n");
  StderrCapture capture;
  dlog::configure(file.path(), dlog::Format::text, false);
  dlog::warn("w");
  dlog::error("e");
  CHECK(capture.finish().empty());
  const std::vector<std::string> logged = lines(file.contents());
  REQUIRE(logged.size() == 3);
  CHECK(logged[0] == "earlier line");
  CHECK(mask_time(logged[1]) == "time=\"<time>\" level=warning msg=w");
  CHECK(mask_time(logged[2]) == "time=\"<time>\" level=error msg=e");
}

TEST_CASE("log: the log file is created 0644 (less the umask)") {
  TempLog file;
  const mode_t old_mask = ::umask(022);
  dlog::configure(file.path(), dlog::Format::json, false);
  ::umask(old_mask);
  struct stat st {};
  REQUIRE(::stat(file.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  // The fd must not leak into hooks or the container process.
  bool found = false;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec) != file.path()) continue;
    found = true;
    CHECK((::fcntl(std::stoi(entry.path().filename().string()), F_GETFD) & FD_CLOEXEC) != 0);
  }
  CHECK(found);
}

TEST_CASE("log: an unopenable log path is an error naming the path") {
  CHECK_THROWS_WITH_AS(dlog::configure("/nonexistent-dir/x/log.json", dlog::Format::json, false),
                       doctest::Contains("open /nonexistent-dir/x/log.json"), deltabox::Error);
}
