#pragma once
// Background work of a snapshot-enabled container, journaled in its state dir (jobs/) so that
// work a helper did not finish is found by the next call: finished, or undone.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace deltabox {

struct Job {
  enum class Type { dump, template_restore, discard, dedup, compact, spill };
  Type type = Type::dump;
  std::string snapshot;    // dump, template_restore, dedup, compact, spill (image_cache.hpp)
  std::string generation;  // dump (the frozen one), discard

  nlohmann::json to_json() const;
  static Job from_json(const nlohmann::json& json);
};

class JobQueue {
 public:
  explicit JobQueue(const std::filesystem::path& state_dir) : dir_(state_dir / "jobs") {}
  std::filesystem::path enqueue(const Job& job) const;
  // Oldest first.
  std::vector<std::pair<std::filesystem::path, Job>> pending() const;
  void done(const std::filesystem::path& file) const;
  // Removes the journaled dump of a snapshot (a synchronous snapshot finished or undone).
  void done_dump(const std::string& snapshot) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace deltabox
