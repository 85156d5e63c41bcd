#include "state/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {

constexpr const char* kStateFile = "state.json";

bool valid_id_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '-' || c == '.';
}

void mkdir_p(const std::filesystem::path& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw Error(fmt::format("create state root {}: {}", path.string(), ec.message()));
  ::chmod(path.c_str(), mode);
}

UniqueFd lock_dir(const std::filesystem::path& path, bool wait = true) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) throw Error("container does not exist");
    throw_errno(fmt::format("open {}", path.string()));
  }
  while (::flock(fd.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
    if (!wait && errno == EWOULDBLOCK) return {};
    if (errno != EINTR) throw_errno(fmt::format("lock {}", path.string()));
  }
  // A delete that held the lock before us has removed the directory meanwhile.
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0 || st.st_nlink == 0) throw Error("container does not exist");
  return fd;
}

}  // namespace

void validate_container_id(const std::string& id) {
  if (id.empty() || id == "." || id == ".." || !std::all_of(id.begin(), id.end(), valid_id_char))
    fail("invalid container ID format");
}

StateStore::StateStore(std::filesystem::path root) : root_(std::move(root)) {
  if (root_ == "/") fail("Option --root argument should not be set to /");
  if (::access(root_.c_str(), F_OK) < 0) mkdir_p(root_, 0700);
}

bool StateStore::exists(const std::string& id) const { return ::access(dir(id).c_str(), F_OK) == 0; }

std::vector<std::string> StateStore::ids() const {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(root_.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return out;
    throw_errno(fmt::format("open {}", root_.string()));
  }
  while (auto* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || e->d_type != DT_DIR) continue;
    out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

ContainerLock StateStore::create_dir(const std::string& id) const {
  validate_container_id(id);
  auto path = dir(id);
  if (::mkdir(path.c_str(), 0711) < 0) {
    if (errno == EEXIST) throw Error("container with given ID already exists");
    throw_errno(fmt::format("create {}", path.string()));
  }
  return ContainerLock(lock_dir(path));
}

ContainerLock StateStore::lock(const std::string& id) const {
  validate_container_id(id);
  return ContainerLock(lock_dir(dir(id)));
}

ContainerLock StateStore::try_lock(const std::string& id) const {
  validate_container_id(id);
  return ContainerLock(lock_dir(dir(id), false));
}

void StateStore::remove_dir(const std::string& id) const {
  validate_container_id(id);
  std::error_code ec;
  std::filesystem::remove_all(dir(id), ec);
  if (ec) throw Error(fmt::format("remove {}: {}", dir(id).string(), ec.message()));
}

void StateStore::save(const std::string& id, const nlohmann::json& state) const {
  write_file_atomic(dir(id) / kStateFile, state.dump(), 0600, Durability::survive_process_crash);
}

std::optional<nlohmann::json> StateStore::load(const std::string& id) const {
  validate_container_id(id);
  std::string text;
  try {
    text = read_file(dir(id) / kStateFile);
  } catch (const Error& e) {
    if (e.code() == ENOENT) return std::nullopt;
    throw;
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("corrupt state file for {}: {}", id, e.what());
  }
}

uid_t StateStore::owner(const std::string& id) const {
  struct stat st {};
  if (::stat(dir(id).c_str(), &st) < 0) throw_errno(fmt::format("stat {}", dir(id).string()));
  return st.st_uid;
}

}  // namespace deltabox
