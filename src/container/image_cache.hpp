#pragma once
// Snapshot images are written first to a cache on tmpfs: the dump is most of a snapshot's
// completion time and of its frozen window, and CRIU writes 256 MiB of pages to tmpfs in about
// 140 ms against 320 ms into btrfs here. The cache is the container's state dir when the state
// root is a tmpfs (/run is, and so is the test harness's root), so it goes with the container.
// The helper spills each snapshot's images to the layer store in the background (copy, fsync,
// dedup against the parent's images) and swaps them in; until then <snapshot>/criu in the store
// is a symlink to the cache. Per container the cache holds at most io.deltabox.image-cache bytes
// (default 1 GiB; 0 turns it off); a dump that might not fit goes to the store directly.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace deltabox {

inline constexpr uint64_t kDefaultImageCacheBytes = uint64_t{1} << 30;

class ImageCache {
 public:
  // state_dir: the container's state dir; cap: the io.deltabox.image-cache budget.
  ImageCache(std::filesystem::path state_dir, uint64_t cap) : dir_(std::move(state_dir) / "images"), cap_(cap) {}

  // The cap from the container's annotations.
  static uint64_t cap_from(const std::map<std::string, std::string>& annotations);
  // Pure: whether a dump of about `estimate` bytes goes to the cache, given what the cache of
  // this container holds already and what the filesystem has free (half of it at most: the
  // rest is the host's).
  static bool fits(uint64_t estimate, uint64_t used, uint64_t cap, uint64_t fs_free);

  // The cache dir for a snapshot's images when a dump of `estimate` bytes fits, else "".
  std::filesystem::path reserve(const std::string& snapshot, uint64_t estimate) const;
  std::filesystem::path dir(const std::string& snapshot) const { return dir_ / snapshot; }
  void remove(const std::string& snapshot) const;

 private:
  uint64_t used() const;
  std::filesystem::path dir_;
  uint64_t cap_;
};

// Bytes of the regular files in a directory (CRIU's images dir is flat).
uint64_t directory_bytes(const std::filesystem::path& dir);

// Sum of the resident memory of pids: what a dump of them writes, about (shared pages count
// once per process, so it errs on the large side).
uint64_t resident_bytes(const std::vector<pid_t>& pids);

// Spill, step 1 (no lock needed, nothing reads `to` yet): copies the images to `to` on the
// store, fsyncs them (so a later snapshot's syncfs does not pay for them) and dedups them
// against the parent snapshot's images when those are in the store. Marks `to` complete.
// Idempotent: a complete `to` is left as it is.
void copy_images_to_store(const std::filesystem::path& from, const std::filesystem::path& to,
                          const std::filesystem::path& parent_images);
// Spill, step 2 (under the container's lock: no CRIU reads the cache meanwhile): `images`, the
// symlink to the cache, and `spilled` swap places atomically; then the symlink goes.
void swap_in_spilled_images(const std::filesystem::path& images, const std::filesystem::path& spilled);

}  // namespace deltabox
