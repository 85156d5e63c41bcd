#include "delta/loop.hpp"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstring>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::delta {
namespace {

constexpr unsigned kLoopMajor = 7;
// LOOP_CTL_GET_FREE and LOOP_CONFIGURE race with other attachers: retry on a lost race.
constexpr int kAttachAttempts = 16;

UniqueFd open_loop_node(int index) {
  std::string path = fmt::format("/dev/loop{}", index);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd && errno == ENOENT) {
    // Without devtmpfs/udev the node for a freshly allocated device may be missing.
    if (::mknod(path.c_str(), S_IFBLK | 0660, makedev(kLoopMajor, static_cast<unsigned>(index))) < 0 &&
        errno != EEXIST) {
      throw_errno(fmt::format("mknod {}", path));
    }
    fd.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  }
  if (!fd) throw_errno(fmt::format("open {}", path));
  return fd;
}

// LOOP_GET_STATUS64 reports the backing file's device in the kernel's "huge" encoding.
bool same_device(uint64_t kernel_dev, dev_t dev) {
  unsigned maj = static_cast<unsigned>((kernel_dev & 0xfff00) >> 8);
  unsigned min = static_cast<unsigned>((kernel_dev & 0xff) | ((kernel_dev >> 12) & 0xfff00));
  return maj == major(dev) && min == minor(dev);
}

}  // namespace

LoopDevice LoopDevice::attach(const std::filesystem::path& backing, uint32_t block_size) {
  UniqueFd file(::open(backing.c_str(), O_RDWR | O_CLOEXEC));
  if (!file) throw_errno(fmt::format("open {}", backing.string()));
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) throw_errno("open /dev/loop-control");

  loop_config config{};
  config.fd = static_cast<__u32>(file.get());
  config.block_size = block_size;
  config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
  std::string name = backing.string();
  std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), name.c_str(), LO_NAME_SIZE - 1);

  int err = 0;
  for (int attempt = 0; attempt < kAttachAttempts; ++attempt) {
    int index = check(::ioctl(control.get(), LOOP_CTL_GET_FREE), "allocate a loop device");
    UniqueFd device = open_loop_node(index);
    if (::ioctl(device.get(), LOOP_CONFIGURE, &config) == 0) {
      return LoopDevice(std::move(device), fmt::format("/dev/loop{}", index));
    }
    err = errno;
    if (err != EBUSY) break;
  }
  throw_errno(err, fmt::format("attach a loop device to {}", backing.string()));
}

std::optional<std::string> find_loop_device(const std::filesystem::path& backing) {
  struct stat st;
  if (::stat(backing.c_str(), &st) < 0) return std::nullopt;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/sys/block", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind("loop", 0) != 0 || !std::filesystem::exists(it->path() / "loop")) continue;
    std::string device = "/dev/" + name;
    UniqueFd fd(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
    loop_info64 info{};
    if (!fd || ::ioctl(fd.get(), LOOP_GET_STATUS64, &info) < 0) continue;
    if (info.lo_inode == st.st_ino && same_device(info.lo_device, st.st_dev)) return device;
  }
  return std::nullopt;
}

bool loop_autoclear(const std::string& device) {
  auto name = std::filesystem::path(device).filename().string();
  try {
    return read_file("/sys/block/" + name + "/loop/autoclear").starts_with("1");
  } catch (const Error&) {
    return false;
  }
}

}  // namespace deltabox::delta
