#include "util/error.hpp"

#include <cstring>

namespace deltabox {

Error::Error(const std::string& message, int err)
    : std::runtime_error(err ? message + ": " + std::strerror(err) : message), code_(err) {}

void throw_errno(int err, std::string_view context) { throw Error(std::string(context), err); }

}  // namespace deltabox
