#pragma once
// The container root overlay: bundle rootfs at the bottom, immutable delta layers above it, one
// writable upper on top. Mounted with the new mount API so the stack is not limited by mount(2)'s
// one-page option string.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "util/fd.hpp"

namespace deltabox::delta {

// overlayfs' own stacking limit (OVL_MAX_STACK).
inline constexpr size_t kMaxOverlayLowers = 500;

struct OverlayLayers {
  // Top first; the last one is the bundle rootfs. Delta layers are `<snapshot subvolume>/upper`.
  std::vector<std::filesystem::path> lowers;
  // Both empty: a read-only overlay of the lowers (needs two or more). Otherwise both are set and
  // live in the same btrfs subvolume (whiteouts are renames from work into upper).
  std::filesystem::path upper, work;
};

// The fsconfig() calls make_overlay issues, in order: (key, value). Pure, for tests and errors.
// Throws Error for an unusable stack (no lowers, more than kMaxOverlayLowers, upper without work).
std::vector<std::pair<std::string, std::string>> overlay_config(const OverlayLayers& layers);

// A detached overlay mount (fsopen + fsconfig + fsmount); attach it with move_mount. Errors name
// the layer the kernel refused and carry the kernel's own message from the fs context.
UniqueFd make_overlay(const OverlayLayers& layers);
// make_overlay, then move_mount onto target.
void mount_overlay_at(const OverlayLayers& layers, const std::filesystem::path& target);

}  // namespace deltabox::delta
