#pragma once
// Errors carry a message with context and, where a syscall failed, its errno.
#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace deltabox {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int err = 0);
  // errno of the failed syscall, 0 when the error is not a syscall's.
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// "context: strerror(err)"
[[noreturn]] void throw_errno(int err, std::string_view context);
[[noreturn]] inline void throw_errno(std::string_view context) { throw_errno(errno, context); }

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Returns rc, or throws with errno and the formatted context when rc < 0.
template <typename T, typename... Args>
T check(T rc, fmt::format_string<Args...> format, Args&&... args) {
  if (rc < 0) throw_errno(errno, fmt::format(format, std::forward<Args>(args)...));
  return rc;
}

}  // namespace deltabox
