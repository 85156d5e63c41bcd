#include "delta/overlay.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "util/error.hpp"

namespace deltabox::delta {
namespace {

// Options that keep every upper usable, unchanged, as a lower of a later overlay (a snapshot
// layer) and keep the overlay independent of the layers' identities:
//  - index=off: no inode index in work/ tying the upper to this exact lower stack (an index
//    would reject the upper once it sits over a different stack after rollback);
//  - redirect_dir=off: renaming a lower directory is answered with EXDEV (mv falls back to copy
//    + delete) instead of leaving trusted.overlay.redirect xattrs that only mean something over
//    the original lowers;
//  - metacopy=off: copy-up copies data, so an upper file never depends on a lower's data;
//  - nfs_export=off: needs index; set explicitly so a kernel default cannot turn index back on;
//  - xino=auto: unique st_ino across layers on different filesystems when the inode numbers
//    leave room; it writes nothing to the layers.
// Whiteouts (char 0:0) and opaque directories (trusted.overlay.opaque=y) work as-is in a lower.
constexpr std::pair<const char*, const char*> kOptions[] = {
    {"index", "off"}, {"redirect_dir", "off"}, {"metacopy", "off"}, {"nfs_export", "off"}, {"xino", "auto"},
};

std::string fs_context_log(int fs_fd) {
  std::string out;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fs_fd, buf, sizeof buf);
    if (n <= 0) break;
    std::string_view line(buf, static_cast<size_t>(n));
    while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (line.size() > 2 && line[1] == ' ') line.remove_prefix(2);  // "e ", "w ", "i " prefixes
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

[[noreturn]] void overlay_fail(int fs_fd, int err, const std::string& step) {
  std::string log = fs_context_log(fs_fd);
  throw Error(fmt::format("overlay mount: {}: {}{}", step, std::strerror(err), log.empty() ? "" : " (" + log + ")"),
              err);
}

// Which fsconfig step a (key, value) pair is, for the error message.
std::string describe_step(const std::pair<std::string, std::string>& option, size_t lower_index, size_t lowers) {
  if (option.first == "lowerdir+") {
    const char* role = lower_index + 1 == lowers ? " (bundle rootfs)" : "";
    return fmt::format("lower layer {} of {}{} {}", lower_index + 1, lowers, role, option.second);
  }
  if (option.first == "upperdir") return "upper layer " + option.second;
  if (option.first == "workdir") return "work dir " + option.second;
  return fmt::format("option {}={}", option.first, option.second);
}

// overlayfs only insists on one mount for upper and work; on btrfs they must also share a
// subvolume or every delete of a lower file fails later with EXDEV (whiteouts are renames from
// work into upper). Subvolumes have their own st_dev, so comparing devices catches it up front.
void check_same_subvolume(const OverlayLayers& layers) {
  struct stat upper, work;
  if (::stat(layers.upper.c_str(), &upper) < 0) {
    throw_errno(fmt::format("overlay mount: upper layer {}", layers.upper.string()));
  }
  if (::stat(layers.work.c_str(), &work) < 0) {
    throw_errno(fmt::format("overlay mount: work dir {}", layers.work.string()));
  }
  if (upper.st_dev != work.st_dev) {
    fail("overlay mount: upper {} and work dir {} are on different filesystems or btrfs subvolumes",
         layers.upper.string(), layers.work.string());
  }
}

}  // namespace

std::vector<std::pair<std::string, std::string>> overlay_config(const OverlayLayers& layers) {
  if (layers.lowers.empty()) fail("overlay mount: no lower layers");
  if (layers.lowers.size() > kMaxOverlayLowers) {
    fail("overlay mount: {} lower layers exceed overlayfs' limit of {}; compact the snapshot chain",
         layers.lowers.size(), kMaxOverlayLowers);
  }
  if (layers.upper.empty() != layers.work.empty()) fail("overlay mount: upper and work dirs must be given together");
  if (layers.upper.empty() && layers.lowers.size() < 2) fail("overlay mount: a read-only overlay needs two lowers");

  std::vector<std::pair<std::string, std::string>> out;
  // "lowerdir+" (Linux 6.8) takes one layer per call: no 4 KiB option string, no escaping of
  // ':' or ',' in layer paths.
  for (const auto& lower : layers.lowers) {
    if (lower.empty()) fail("overlay mount: empty lower layer path");
    out.emplace_back("lowerdir+", lower.string());
  }
  if (!layers.upper.empty()) {
    out.emplace_back("upperdir", layers.upper.string());
    out.emplace_back("workdir", layers.work.string());
  }
  for (const auto& [key, value] : kOptions) out.emplace_back(key, value);
  return out;
}

UniqueFd make_overlay(const OverlayLayers& layers) {
  auto config = overlay_config(layers);
  if (!layers.upper.empty()) check_same_subvolume(layers);
  UniqueFd fs(::fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) throw_errno("overlay mount: fsopen");
  size_t lower_index = 0;
  for (const auto& option : config) {
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, option.first.c_str(), option.second.c_str(), 0) < 0) {
      int err = errno;
      std::string step = describe_step(option, lower_index, layers.lowers.size());
      if (option.first == "lowerdir+" && err == EINVAL && lower_index == 0) step += " (lowerdir+ needs Linux 6.8+)";
      overlay_fail(fs.get(), err, step);
    }
    if (option.first == "lowerdir+") ++lower_index;
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    overlay_fail(fs.get(), errno, "create");
  }
  int mnt = ::fsmount(fs.get(), FSMOUNT_CLOEXEC, 0);
  if (mnt < 0) overlay_fail(fs.get(), errno, "fsmount");
  return UniqueFd(mnt);
}

void mount_overlay_at(const OverlayLayers& layers, const std::filesystem::path& target) {
  UniqueFd mnt = make_overlay(layers);
  if (::move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    throw_errno(fmt::format("overlay mount: move_mount onto {}", target.string()));
  }
}

}  // namespace deltabox::delta
