#include "cgroups/controller_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <limits>

#include "cgroups/wait.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox::cgroups {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

void write_to(int fd, const std::string& path, std::string_view data) {
  if (::write(fd, data.data(), data.size()) < 0)
    throw_errno(errno, fmt::format("failed to write {}: write {}", log::go_quote(data), path));
}

// O_TRUNC as a shell's ">" does: cgroupfs ignores it, and a regular file standing in for a
// cgroup file (tests) then holds exactly the last value written.
UniqueFd open_for_writing(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path));
  return fd;
}

}  // namespace

uint64_t parse_cgroup_uint(std::string_view text, const std::string& where) {
  text = trim(text);
  if (text == "max") return std::numeric_limits<uint64_t>::max();
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size()) return value;
  // The kernel reports some unset limits as -1; runc reads those as 0.
  int64_t negative = 0;
  auto [nend, nec] = std::from_chars(text.data(), text.data() + text.size(), negative);
  if (nec == std::errc() && nend == text.data() + text.size() && negative < 0) return 0;
  fail("unable to parse {} as a uint from Cgroup file {}", log::go_quote(text), log::go_quote(where));
}

ControllerFiles::ControllerFiles(std::string name, const CgroupDir* dir, std::function<bool()> prepare)
    : name_(std::move(name)), dir_(dir), prepare_(std::move(prepare)) {}

const CgroupDir& ControllerFiles::dir() const {
  if (!ready_) ready_ = dir_ && (!prepare_ || prepare_());
  if (!*ready_) fail("cannot set {} limit: container could not join or create cgroup", name_);
  return *dir_;
}

std::string ControllerFiles::path(std::string_view file) const { return dir().file(file); }

void ControllerFiles::write(std::string_view file, std::string_view data) const {
  auto p = path(file);
  write_to(open_for_writing(p).get(), p, data);
}

void ControllerFiles::write_lines(std::string_view file, std::string_view data) const {
  auto p = path(file);
  auto fd = open_for_writing(p);
  while (!data.empty()) {
    size_t end = data.find('\n');
    end = end == std::string_view::npos ? data.size() : end + 1;
    write_to(fd.get(), p, data.substr(0, end));
    data.remove_prefix(end);
  }
}

std::string ControllerFiles::read(std::string_view file) const { return read_file(path(file)); }

uint64_t ControllerFiles::read_uint(std::string_view file) const {
  auto p = path(file);
  return parse_cgroup_uint(read_file(p), p);
}

std::optional<uint64_t> ControllerFiles::read_key(std::string_view file, std::string_view key) const {
  auto p = path(file);
  auto value = events_field(read_file(p), key);
  if (!value) return std::nullopt;
  return parse_cgroup_uint(*value, p);
}

bool ControllerFiles::has(std::string_view file) const { return ::access(path(file).c_str(), F_OK) == 0; }

}  // namespace deltabox::cgroups
