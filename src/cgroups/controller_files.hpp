#pragma once
// The files of one controller in one container cgroup, read and written the way runc's cgroups
// package does it, with its error texts:
//   open /sys/fs/cgroup/cpu/x/cpu.rt_runtime_us: no such file or directory
//   failed to write "100": write /sys/fs/cgroup/cpu/x/cpu.rt_runtime_us: invalid argument
// A controller that exists nowhere for this container (not mounted on v1, not available on
// cgroup2) has no directory, and its first access throws what runc's fs driver says then:
//   cannot set net_cls limit: container could not join or create cgroup
// so writers only fail for controllers the config actually asks something of.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cgroups/cgroup_dir.hpp"

namespace deltabox::cgroups {

class ControllerFiles {
 public:
  // `prepare` runs once, before the first access: it makes the controller usable in `dir` (on
  // cgroup2: enables it in parents we created) and returns false if it cannot be used there.
  ControllerFiles(std::string name, const CgroupDir* dir, std::function<bool()> prepare = {});

  const std::string& name() const { return name_; }
  // Whether there is a directory at all (the controller may still lack files in it).
  bool present() const { return dir_ != nullptr; }
  // Whether the files live in the cgroup2 hierarchy (v2 formats) rather than a v1 one.
  bool unified() const { return dir_ && dir_->hierarchy().unified(); }
  std::string path(std::string_view file) const;

  void write(std::string_view file, std::string_view data) const;
  // Like runc's WriteFileByLine: a multi-line value goes in one write(2) per line.
  void write_lines(std::string_view file, std::string_view data) const;
  std::string read(std::string_view file) const;
  // runc's GetCgroupParamUint: the trimmed content as a number, "max" as UINT64_MAX, a negative
  // number as 0.
  uint64_t read_uint(std::string_view file) const;
  // Value of `key` in a flat "key value" file (memory.events, memory.oom_control); nullopt if the
  // key is absent.
  std::optional<uint64_t> read_key(std::string_view file, std::string_view key) const;
  bool has(std::string_view file) const;

 private:
  const CgroupDir& dir() const;

  std::string name_;
  const CgroupDir* dir_;
  std::function<bool()> prepare_;
  mutable std::optional<bool> ready_;
};

// Parses a cgroup number the way runc's ParseUint does ("max" → UINT64_MAX, negative → 0).
uint64_t parse_cgroup_uint(std::string_view text, const std::string& where);

}  // namespace deltabox::cgroups
