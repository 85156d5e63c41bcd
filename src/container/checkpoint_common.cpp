#include "container/checkpoint_common.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <sstream>

#include "util/error.hpp"

namespace deltabox {

void make_dirs(const std::filesystem::path& path, mode_t mode) {
  std::filesystem::path partial;
  for (const auto& part : path) {
    partial /= part;
    if (::mkdir(partial.c_str(), mode) < 0 && errno != EEXIST) throw_errno(fmt::format("mkdir {}", partial.string()));
  }
}

UniqueFd open_dir(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

std::optional<criu::CgroupMode> parse_cgroup_mode(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name == "soft") return criu::CgroupMode::soft;
  if (name == "full") return criu::CgroupMode::full;
  if (name == "strict") return criu::CgroupMode::strict;
  if (name == "ignore") return criu::CgroupMode::ignore;
  fail("Invalid manage cgroups mode");
}

uint32_t parse_empty_ns(const std::vector<std::string>& names) {
  uint32_t mask = CLONE_NEWNET;
  for (const auto& name : names)
    if (name != "network") fail("namespace \"{}\" is not supported", name);
  return mask;
}

void throw_criu_failure(const criu::CriuError& e, const char* type, const std::filesystem::path& log) {
  std::string message = fmt::format("criu failed: type {} errno {}\nlog file: {}", type, e.cr_errno(), log.string());
  std::istringstream lines(e.log_tail());
  for (std::string line; std::getline(lines, line);)
    // CRIU always fails to raise its fd limit without CAP_SYS_RESOURCE, and goes on regardless.
    if (line.find("RLIMIT_NOFILE") == std::string::npos) message += "\n" + line;
  throw Error(message);
}

}  // namespace deltabox
