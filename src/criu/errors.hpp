#pragma once
// A failed CRIU operation, with the lines of CRIU's log that say why.
#include <string>

#include "util/error.hpp"

namespace deltabox::criu {

class CriuError : public Error {
 public:
  // message: what failed ("criu dump of pid 6: ..."); cr_errno: CRIU's errno for it (0: none);
  // log_tail: the last error lines of CRIU's log, appended to what() on their own lines.
  CriuError(const std::string& message, int cr_errno, std::string log_tail);
  int cr_errno() const noexcept { return cr_errno_; }
  const std::string& log_tail() const noexcept { return log_tail_; }

 private:
  int cr_errno_;
  std::string log_tail_;
};

// The last max_lines "Error (...)" lines of <work_dir_fd>/<log_file>, '\n'-separated; when the
// log has none, its last max_lines lines. "" if the log cannot be read.
std::string log_tail(int work_dir_fd, const std::string& log_file, int max_lines = 10);

}  // namespace deltabox::criu
