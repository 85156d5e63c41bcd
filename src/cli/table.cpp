#include "cli/table.hpp"

#include <algorithm>

namespace deltabox::cli {

namespace {
constexpr size_t kMinWidth = 12;
constexpr size_t kPadding = 3;
}  // namespace

std::string TabWriter::render() const {
  std::vector<size_t> widths;
  for (const auto& r : rows_)
    for (size_t c = 0; c + 1 < r.size(); ++c) {
      if (widths.size() <= c) widths.resize(c + 1, 0);
      widths[c] = std::max(widths[c], std::max(r[c].size() + kPadding, kMinWidth));
    }
  std::string out;
  for (const auto& r : rows_) {
    for (size_t c = 0; c < r.size(); ++c) {
      out += r[c];
      if (c + 1 < r.size()) out.append(widths[c] - r[c].size(), ' ');
    }
    out += '\n';
  }
  return out;
}

}  // namespace deltabox::cli
