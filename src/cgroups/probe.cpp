#include "cgroups/probe.hpp"

#include <linux/magic.h>
#include <sys/statfs.h>

#include <algorithm>

#include "cgroups/paths.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::cgroups {
namespace {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t end = text.find(sep, pos);
    out.emplace_back(text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    if (end == std::string_view::npos) return out;
    pos = end + 1;
  }
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  for (auto& line : split(text, '\n'))
    if (!line.empty()) out.push_back(std::move(line));
  return out;
}

bool is_octal(char c) { return c >= '0' && c <= '7'; }

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape_mountinfo(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) && is_octal(field[i + 2]) &&
        is_octal(field[i + 3])) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

bool fs_magic_is(const char* path, long magic) {
  struct statfs st {};
  return ::statfs(path, &st) == 0 && static_cast<long>(st.f_type) == magic;
}

bool has_all(const std::vector<std::string>& options, const std::vector<std::string>& wanted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& w) {
    return std::find(options.begin(), options.end(), w) != options.end();
  });
}

bool mount_root_usable(const std::string& root) {
  // In a cgroup namespace a mount of a cgroup outside the namespace shows as "/..": unusable.
  try {
    return normalize_cgroup_path(root) == root;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

const char* to_string(Layout layout) {
  switch (layout) {
    case Layout::v1: return "v1";
    case Layout::v2: return "v2";
    case Layout::hybrid: return "hybrid";
  }
  return "?";
}

Layout layout_from_string(const std::string& name) {
  for (auto l : {Layout::v1, Layout::v2, Layout::hybrid})
    if (name == to_string(l)) return l;
  fail("unknown cgroup layout {:?}", name);
}

Layout detect_layout() {
  if (fs_magic_is("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC)) return Layout::v2;
  if (fs_magic_is("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC)) return Layout::hybrid;
  return Layout::v1;
}

Layout layout_of(const std::vector<Hierarchy>& hierarchies) {
  bool v1 = false, v2 = false;
  for (const auto& h : hierarchies) (h.unified() ? v2 : v1) = true;
  if (v1 && v2) return Layout::hybrid;
  if (v2) return Layout::v2;
  if (v1) return Layout::v1;
  fail("no cgroup hierarchy is mounted");
}

std::vector<CgroupMount> parse_mountinfo_cgroups(const std::string& text) {
  std::vector<CgroupMount> out;
  for (const auto& line : lines(text)) {
    auto fields = split(line, ' ');
    // id parent dev root mount_point options [optional...] - fstype source super_options
    auto dash = std::find(fields.begin() + std::min<size_t>(fields.size(), 6), fields.end(), "-");
    if (fields.size() < 6 || dash == fields.end() || fields.end() - dash < 4) continue;
    const auto& fstype = *(dash + 1);
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    out.push_back({unescape_mountinfo(fields[3]), unescape_mountinfo(fields[4]), fstype, split(*(dash + 3), ',')});
  }
  return out;
}

std::vector<ProcCgroupEntry> parse_proc_cgroup(const std::string& text) {
  std::vector<ProcCgroupEntry> out;
  for (const auto& line : lines(text)) {
    size_t first = line.find(':');
    size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) fail("malformed /proc/self/cgroup line {:?}", line);
    ProcCgroupEntry e;
    try {
      e.hierarchy_id = std::stoi(line.substr(0, first));
    } catch (const std::exception&) {
      fail("malformed /proc/self/cgroup line {:?}", line);
    }
    auto controllers = line.substr(first + 1, second - first - 1);
    if (!controllers.empty()) e.controllers = split(controllers, ',');
    e.path = line.substr(second + 1);  // may itself contain ':'
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<OwnHierarchy> match_hierarchies(const std::vector<CgroupMount>& mounts,
                                            const std::vector<ProcCgroupEntry>& entries) {
  std::vector<std::pair<size_t, OwnHierarchy>> found;  // (mount index, hierarchy) to sort by mount order
  for (const auto& e : entries) {
    const bool unified = e.controllers.empty();
    const CgroupMount* chosen = nullptr;
    size_t index = 0;
    for (size_t i = 0; i < mounts.size(); ++i) {
      const auto& m = mounts[i];
      if ((m.fstype == "cgroup2") != unified || !mount_root_usable(m.root)) continue;
      if (!unified && !has_all(m.super_options, e.controllers)) continue;
      bool contains_own = is_at_or_below(e.path, m.root);
      if (!chosen || (contains_own && !is_at_or_below(e.path, chosen->root))) {
        chosen = &m;
        index = i;
      }
    }
    if (!chosen) continue;
    found.push_back({index, OwnHierarchy{Hierarchy{e.controllers, chosen->mount_point, chosen->root}, e.path}});
  }
  std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<OwnHierarchy> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::vector<OwnHierarchy> probe_hierarchies() {
  return match_hierarchies(parse_mountinfo_cgroups(read_file("/proc/self/mountinfo")),
                           parse_proc_cgroup(read_file("/proc/self/cgroup")));
}

}  // namespace deltabox::cgroups
