#include "container/criu_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "util/error.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

// Named after the boot: a kernel's features are only known to hold until it reboots.
std::filesystem::path shared_cache(const std::filesystem::path& store) {
  std::string boot_id = read_file("/proc/sys/kernel/random/boot_id");
  while (!boot_id.empty() && boot_id.back() == '\n') boot_id.pop_back();
  return store / fmt::format(".criu-kdat-{}", boot_id);
}

std::string anchor_cache(pid_t anchor) { return fmt::format("/proc/{}/root/run/criu.kdat", anchor); }

// Only into an anchor's own /run: before it mounted its tmpfs there, the path is the host's.
bool has_own_run(pid_t anchor) {
  struct stat ours {}, theirs {};
  return ::stat("/run", &ours) == 0 && ::stat(fmt::format("/proc/{}/root/run", anchor).c_str(), &theirs) == 0 &&
         ours.st_dev != theirs.st_dev;
}

void copy_cache(const std::filesystem::path& from, const std::filesystem::path& to) {
  try {
    write_file_atomic(to, read_file(from), 0600, Durability::survive_process_crash);
  } catch (const Error& e) {
    log::debug("CRIU kernel-feature cache {} -> {}: {}", from.string(), to.string(), e.what());
  }
}

}  // namespace

void seed_criu_cache(const std::filesystem::path& store, pid_t anchor) {
  const auto shared = shared_cache(store);
  if (::access(shared.c_str(), F_OK) == 0 && has_own_run(anchor)) copy_cache(shared, anchor_cache(anchor));
}

void share_criu_cache(pid_t from_anchor, pid_t to_anchor) {
  if (has_own_run(to_anchor)) copy_cache(anchor_cache(from_anchor), anchor_cache(to_anchor));
}

void keep_criu_cache(const std::filesystem::path& store, pid_t anchor) {
  const auto shared = shared_cache(store);
  if (::access(shared.c_str(), F_OK) == 0) return;
  copy_cache(anchor_cache(anchor), shared);
}

}  // namespace deltabox
