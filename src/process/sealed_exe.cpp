#include "process/sealed_exe.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>
#include <filesystem>
#include <string>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

extern char** environ;

namespace deltabox {

namespace {

constexpr const char* kSealedEnv = "_DELTABOX_SEALED_EXE";

int fsopen_(const char* fs) { return static_cast<int>(::syscall(SYS_fsopen, fs, FSOPEN_CLOEXEC)); }
int fsconfig_(int fd, unsigned cmd, const char* key, const char* value) {
  return static_cast<int>(::syscall(SYS_fsconfig, fd, cmd, key, value, 0));
}
int fsmount_(int fd) { return static_cast<int>(::syscall(SYS_fsmount, fd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY)); }

UniqueFd detached_mount(const char* fs, const std::vector<std::pair<std::string, std::string>>& options) {
  UniqueFd ctx(fsopen_(fs));
  if (!ctx) return {};
  for (const auto& [key, value] : options)
    if (fsconfig_(ctx.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str()) < 0) return {};
  if (fsconfig_(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr) < 0) return {};
  return UniqueFd(fsmount_(ctx.get()));
}

// The binary seen through an overlay with two read-only lowers (its directory and an empty
// tmpfs: overlayfs wants two lowers when there is no upper).
UniqueFd open_through_overlay(const std::filesystem::path& binary) {
  UniqueFd empty = detached_mount("tmpfs", {{"size", "4k"}});
  if (!empty) return {};
  UniqueFd overlay = detached_mount(
      "overlay", {{"lowerdir+", binary.parent_path().string()}, {"lowerdir+", "/proc/self/fd/" + std::to_string(empty.get())}});
  if (!overlay) return {};
  return UniqueFd(::openat(overlay.get(), binary.filename().c_str(), O_PATH | O_CLOEXEC));
}

UniqueFd sealed_copy(const std::filesystem::path& binary) {
  UniqueFd src(::open(binary.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd mem(::memfd_create("deltabox", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!src || !mem) return {};
  struct stat st {};
  if (::fstat(src.get(), &st) < 0) return {};
  for (off_t done = 0; done < st.st_size;) {
    ssize_t n = ::sendfile(mem.get(), src.get(), nullptr, static_cast<size_t>(st.st_size - done));
    if (n <= 0) return {};
    done += n;
  }
  if (::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) return {};
  return mem;
}

bool running_sealed() {
  const char* marker = std::getenv(kSealedEnv);
  if (!marker) return false;
  ::unsetenv(kSealedEnv);  // nothing we start should see it
  struct statfs fs {};
  if (::statfs("/proc/self/exe", &fs) < 0) return false;
  return fs.f_type == OVERLAYFS_SUPER_MAGIC || fs.f_type == TMPFS_MAGIC || fs.f_type == HUGETLBFS_MAGIC;
}

}  // namespace

void ensure_sealed_executable(char** argv) {
  if (running_sealed()) return;
  std::error_code ec;
  auto binary = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return;
  UniqueFd exe = open_through_overlay(binary);
  if (!exe) exe = sealed_copy(binary);
  if (!exe) {
    log::warn("cannot protect the runtime binary against overwrite from containers (CVE-2019-5736)");
    return;
  }
  ::setenv(kSealedEnv, "1", 1);
  ::syscall(SYS_execveat, exe.get(), "", argv, environ, AT_EMPTY_PATH);
  ::unsetenv(kSealedEnv);
  log::warn("re-exec from a sealed copy failed: {}", std::strerror(errno));
}

}  // namespace deltabox
