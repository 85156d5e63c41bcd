#pragma once
// Flattening a chain of delta layers into one, to keep rollback chains under overlayfs' 500-layer
// limit and lookups cheap (every lower costs a lookup on a miss).
#include <filesystem>
#include <vector>

namespace deltabox::delta {

class LayerStore;

// Writes at `dest` (a new snapshot subvolume, read-only on btrfs) a layer whose content over the
// bundle rootfs equals the stack `layers_top_first` over it. Each layer is `<subvolume>/upper`
// and the result is `dest/upper` (dest/work exists too, so dest has the shape of any snapshot).
// None of the layers may be the bundle rootfs: whiteouts are kept in the result because they
// may hide rootfs files (the rootfs is not consulted), except inside opaque directories where
// nothing below shows anyway. On btrfs the bottom layer's subvolume is snapshotted and the upper
// layers are applied on top with reflink copies, so the cost is the size of the changes above
// the bottom layer, not of the whole content.
void compact_layers(const LayerStore& store, const std::vector<std::filesystem::path>& layers_top_first,
                    const std::filesystem::path& dest);

// Applies one upper-style layer onto a flattened tree in place (the step compact_layers repeats).
void apply_layer(int layer_dir, int target_dir, bool reflink);

}  // namespace deltabox::delta
