#pragma once
// Loop devices over image files, through /dev/loop-control and LOOP_CONFIGURE (no losetup exec).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "util/fd.hpp"

namespace deltabox::delta {

// An attached loop device. It is configured with LO_FLAGS_AUTOCLEAR: the kernel detaches it when
// its last user goes away, so after mounting it and dropping this object the mount alone holds it
// and unmounting (or the end of the mount namespace) frees the device. Nothing ever leaks a
// loop device, even if the process dies between attach and mount.
class LoopDevice {
 public:
  // Binds a free loop device to backing (buffered I/O). block_size is the logical block size;
  // 0 keeps the kernel's 512, which any filesystem accepts (XFS refuses a device whose sectors
  // are larger than its own).
  static LoopDevice attach(const std::filesystem::path& backing, uint32_t block_size = 0);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

 private:
  LoopDevice(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

// "/dev/loopN" of a loop device already bound to this very file (same device and inode), if any.
std::optional<std::string> find_loop_device(const std::filesystem::path& backing);

// Whether the loop device has autoclear set (sysfs), for tests and diagnostics.
bool loop_autoclear(const std::string& device);

}  // namespace deltabox::delta
