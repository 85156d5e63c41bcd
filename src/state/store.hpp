#pragma once
// The --root directory: one sub-directory per container holding its state file, its exec fifo
// and its lock. Every CLI call is a new process, so everything a later call needs lives here.
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/fd.hpp"

namespace deltabox {

// runc's rule: ^[\w+-\.]+$, and not "." or "..".
void validate_container_id(const std::string& id);

// An exclusive flock on a container's directory: verbs on one container are serialized, verbs on
// different containers never wait for each other. Released when destroyed.
class ContainerLock {
 public:
  ContainerLock() = default;
  explicit ContainerLock(UniqueFd dir) : dir_(std::move(dir)) {}
  int dir_fd() const { return dir_.get(); }
  bool held() const { return dir_.valid(); }
  void release() { dir_.reset(); }

 private:
  UniqueFd dir_;
};

class StateStore {
 public:
  explicit StateStore(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path dir(const std::string& id) const { return root_ / id; }
  bool exists(const std::string& id) const;
  std::vector<std::string> ids() const;

  // Makes <root>/<id> and locks it; throws "container with given ID already exists".
  ContainerLock create_dir(const std::string& id) const;
  // Locks an existing container dir; throws "container does not exist" (also when it vanished
  // while we waited for the lock).
  ContainerLock lock(const std::string& id) const;
  // Without waiting: an unheld lock when another process holds it.
  ContainerLock try_lock(const std::string& id) const;
  void remove_dir(const std::string& id) const;

  // The state file: written atomically (rename), read whole.
  void save(const std::string& id, const nlohmann::json& state) const;
  std::optional<nlohmann::json> load(const std::string& id) const;
  // uid owning the container dir ("owner" in `list`).
  uid_t owner(const std::string& id) const;

 private:
  std::filesystem::path root_;
};

}  // namespace deltabox
