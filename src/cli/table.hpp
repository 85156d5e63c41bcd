#pragma once
// Go's text/tabwriter as runc configures it for `list` (minwidth 12, padding 3, spaces): every
// cell but the last of a row is padded to its column's width.
#include <string>
#include <vector>

namespace deltabox::cli {

class TabWriter {
 public:
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace deltabox::cli
