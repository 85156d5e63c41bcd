#include "util/error.hpp"

#include <cstring>

namespace deltabox {

namespace {
// Go spells errno texts in lower case ("no such file or directory"), and callers such as podman
// match those spellings.
std::string errno_text(int err) {
  std::string text = std::strerror(err);
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z' && !(text.size() > 1 && text[1] >= 'A' && text[1] <= 'Z'))
    text[0] = static_cast<char>(text[0] - 'A' + 'a');
  return text;
}
}  // namespace

Error::Error(const std::string& message, int err)
    : std::runtime_error(err ? message + ": " + errno_text(err) : message), code_(err) {}

void throw_errno(int err, std::string_view context) { throw Error(std::string(context), err); }

}  // namespace deltabox
