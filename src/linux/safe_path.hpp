#pragma once
// Path resolution *inside* a container rootfs that can never leave it.
//
// A rootfs is untrusted: it can hold symlinks such as `etc -> /etc`, `up -> ../../..` or loops,
// and a host path string built as rootfs + "/" + destination would follow them onto the host
// (CVE-2024-21626 and friends). Everything here resolves relative to an fd of the root with the
// kernel's RESOLVE_IN_ROOT semantics: "/" and ".." stop at the root, absolute symlinks restart at
// the root, and magic links (/proc/self/fd/N, /proc/self/exe) are refused.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace deltabox {

// Lexical cleanup with Go's filepath.Clean semantics: collapse "//", drop ".", resolve ".."
// against the preceding element (never above "/" for absolute paths), "" becomes ".".
std::string clean_path(std::string_view path);

// openat2(root_fd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS). `path` may be absolute or
// relative; both are taken relative to root_fd. O_CLOEXEC is always added. Retries EAGAIN (the
// kernel's answer to a concurrent rename or mount). Throws Error (code() = errno) naming the path.
UniqueFd open_in_root(int root_fd, std::string_view path, int flags, mode_t mode = 0);

// As open_in_root, but a missing path (ENOENT) is std::nullopt instead of an error.
std::optional<UniqueFd> open_in_root_if_exists(int root_fd, std::string_view path, int flags);

// `mkdir -p` inside the root. Components are walked one at a time from the fd of the already
// resolved parent (never by re-resolving a string from the host); existing symlinks, including
// dangling ones, are followed as if root_fd were "/", so `evil -> /etc` creates <root>/etc.
// Returns an O_PATH | O_DIRECTORY fd of the final directory. ENOTDIR if a component is a file.
UniqueFd mkdir_all_in_root(int root_fd, std::string_view path, mode_t mode);

// Makes sure a non-directory exists at `path` (a bind-mount target for a file source): missing
// parents are created 0755 as by mkdir_all_in_root, a missing file is created empty with `mode`.
// An existing entry (whatever its type) is kept. Returns an O_PATH fd of it.
UniqueFd create_file_in_root(int root_fd, std::string_view path, mode_t mode);

// readlink("/proc/self/fd/N"): where the kernel says an fd points, e.g. for messages, or to
// hand a resolved directory to code that only takes path strings.
std::string fd_path(int fd);

// "/proc/self/fd/N". mount(2) given this string as its target follows the magic link to the
// exact inode the fd holds, so a path resolved safely once cannot be swapped underneath us.
std::string proc_fd_path(int fd);

}  // namespace deltabox
