#pragma once
#include <string_view>

namespace deltabox {
// runc's parseSignal: a number, or a name with or without the SIG prefix, any case.
// Throws Error("unknown signal \"X\"").
int parse_signal(std::string_view text);
}  // namespace deltabox
