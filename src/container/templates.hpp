#pragma once
// Templates: a snapshot's process tree restored ahead of time beside the live generation, left
// stopped. A warm rollback just kills the live generation and continues the template: no CRIU
// on the critical path. Records live in the container's state dir (templates/<snapshot>.json):
// processes do not outlive a reboot, so neither do they.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace deltabox {

struct TemplateRecord {
  std::string snapshot;
  std::string generation;
  pid_t anchor_pid = 0;  // its init as the anchor's pid namespace numbers it
  pid_t host_pid = 0;
  uint64_t start_time = 0;
  uint64_t image_bytes = 0;  // what restoring it loaded: the pool's memory estimate
  std::vector<std::string> layers;  // its overlay's lowers (a compaction may change the snapshot's)
  bool alive() const;
};

class TemplatePool {
 public:
  explicit TemplatePool(const std::filesystem::path& state_dir) : dir_(state_dir / "templates") {}
  std::optional<TemplateRecord> find(const std::string& snapshot) const;
  std::vector<TemplateRecord> all() const;  // oldest first
  void save(const TemplateRecord& record) const;
  void forget(const std::string& snapshot) const;

 private:
  std::filesystem::path dir_;
};

// The pool's bounds, from annotations: io.deltabox.templates (count, default 2) and
// io.deltabox.template-memory (bytes, default 1 GiB).
struct TemplateBudget {
  size_t count = 2;
  uint64_t bytes = uint64_t{1} << 30;
};

}  // namespace deltabox
