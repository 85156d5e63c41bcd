#include "criu/errors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <string_view>

#include "util/fd.hpp"

namespace deltabox::criu {

namespace {

// CRIU's logs grow to megabytes at high verbosity; the reason for a failure is near the end.
constexpr off_t kTailBytes = 64 * 1024;

std::string read_tail(int dirfd, const std::string& name) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return {};
  off_t start = st.st_size > kTailBytes ? st.st_size - kTailBytes : 0;
  std::string out(static_cast<size_t>(st.st_size - start), '\0');
  ssize_t n = ::pread(fd.get(), out.data(), out.size(), start);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string join_last(const std::deque<std::string_view>& lines) {
  std::string out;
  for (auto line : lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

std::string compose(const std::string& message, int cr_errno, const std::string& tail) {
  std::string out = message;
  if (cr_errno) out += fmt::format(" (errno {}: {})", cr_errno, std::strerror(cr_errno));
  if (!tail.empty()) out += "\n" + tail;
  return out;
}

}  // namespace

CriuError::CriuError(const std::string& message, int cr_errno, std::string log_tail)
    : Error(compose(message, cr_errno, log_tail)), cr_errno_(cr_errno), log_tail_(std::move(log_tail)) {}

std::string log_tail(int work_dir_fd, const std::string& log_file, int max_lines) {
  const std::string text = read_tail(work_dir_fd, log_file);
  std::deque<std::string_view> errors, last;
  std::string_view rest = text;
  auto keep = [max_lines](std::deque<std::string_view>& q, std::string_view line) {
    q.push_back(line);
    if (static_cast<int>(q.size()) > max_lines) q.pop_front();
  };
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (line.empty()) continue;
    keep(last, line);
    if (line.find("Error (") != std::string_view::npos) keep(errors, line);
  }
  return join_last(errors.empty() ? last : errors);
}

}  // namespace deltabox::criu
