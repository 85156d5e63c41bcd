#include "delta/image.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

#include "delta/loop.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

extern char** environ;

namespace deltabox::delta::image {
namespace {

// Inside the store, atime updates would turn every read of a lower layer into metadata writes
// (and CoW of the layer's tree blocks).
constexpr unsigned long kMountFlags = MS_NOATIME;
// user_subvol_rm_allowed: lets an unprivileged owner of the store's files (rootless setups)
// delete subvolumes via rmdir.
std::string mount_data(bool barriers) {
  return barriers ? "user_subvol_rm_allowed" : "user_subvol_rm_allowed,nobarrier";
}

std::string find_mkfs() {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"}) {
    std::string candidate = std::string(dir) + "/mkfs.btrfs";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  fail("mkfs.btrfs not found (install btrfs-progs)");
}

std::string read_all(int fd) {
  std::string out;
  std::array<char, 4096> buf;
  ssize_t n;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.append(buf.data(), static_cast<size_t>(n));
  }
  return out;
}

// Runs mkfs.btrfs on a regular file. Single data and metadata profiles: the image sits on one
// host file, so DUP metadata would only double metadata writes without adding safety.
void run_mkfs(const std::filesystem::path& file) {
  std::string mkfs = find_mkfs();
  std::vector<std::string> args = {mkfs, "-q", "-f", "-L", "deltabox", "-m", "single", "-d", "single", file.string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipefd[2];
  check(::pipe2(pipefd, O_CLOEXEC), "pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  pid_t pid = 0;
  int err = ::posix_spawn(&pid, mkfs.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) throw_errno(err, fmt::format("spawn {}", mkfs));
  write_end.reset();
  std::string output = read_all(read_end.get());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!output.empty() && output.back() == '\n') output.pop_back();
    fail("mkfs.btrfs {} failed: {}", file.string(), output.empty() ? "no output" : output);
  }
}

}  // namespace

void create_btrfs(const std::filesystem::path& image, uint64_t size) {
  auto tmp = image;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  try {
    {
      UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!fd) throw_errno(fmt::format("create {}", tmp.string()));
      if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) {
        throw_errno(fmt::format("size {} to {} bytes", tmp.string(), size));
      }
    }
    run_mkfs(tmp);
    {
      // mkfs wrote through its own fds; make the image durable before it gets its real name.
      UniqueFd fd(::open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
      if (fd) ::fsync(fd.get());
    }
    check(::rename(tmp.c_str(), image.c_str()), "rename {} to {}", tmp.string(), image.string());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

void mount_btrfs(const std::filesystem::path& image, const std::filesystem::path& dir, bool barriers) {
  std::string data = mount_data(barriers);
  if (auto existing = find_loop_device(image)) {
    if (::mount(existing->c_str(), dir.c_str(), "btrfs", kMountFlags, data.c_str()) == 0) return;
    // The device may have been autocleared between the lookup and the mount: bind a new one.
  }
  // 4 KiB logical blocks: btrfs' sector size, so no request is ever split below it.
  LoopDevice loop = LoopDevice::attach(image, 4096);
  if (::mount(loop.path().c_str(), dir.c_str(), "btrfs", kMountFlags, data.c_str()) < 0) {
    throw_errno(fmt::format("mount {} ({}) at {}", loop.path(), image.string(), dir.string()));
  }
  // Dropping `loop` closes our fd; the mount keeps the device and autoclear frees it on unmount.
}

}  // namespace deltabox::delta::image
