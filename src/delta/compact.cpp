#include "delta/compact.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "delta/btrfs.hpp"
#include "delta/copy.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"

namespace deltabox::delta {
namespace {

class LayerApplier {
 public:
  LayerApplier(DataCopy mode, int target_root) : copier_(mode, target_root) {}

  // Merges the entries of `layer` (one directory of the upper layer) into `target`, where
  // `target_opaque` says nothing under target's parent chain shows through from the rootfs.
  void merge_dir(int layer, int target, const std::string& rel, bool target_opaque) {
    for (const std::string& name : list_dir(layer)) {
      std::string child_rel = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      check(::fstatat(layer, name.c_str(), &st, AT_SYMLINK_NOFOLLOW), "stat {}", child_rel);
      if (is_whiteout(st)) {
        apply_whiteout(layer, name, target, child_rel, target_opaque);
      } else if (S_ISDIR(st.st_mode)) {
        apply_dir(layer, name, st, target, child_rel, target_opaque);
      } else {
        remove_entry_at(target, name);
        copier_.copy_entry(layer, name, target, child_rel);
      }
    }
  }

  void apply_root_metadata(int layer, int target) {
    struct stat st;
    check(::fstat(layer, &st), "stat layer root");
    replace_dir_metadata(layer, ".", st, target, ".");
  }

 private:
  void apply_whiteout(int layer, const std::string& name, int target, const std::string& rel, bool target_opaque) {
    remove_entry_at(target, name);
    // The whiteout may be hiding a rootfs file: keep it unless an opaque dir hides the rootfs anyway.
    if (!target_opaque) copier_.copy_entry(layer, name, target, rel);
  }

  void apply_dir(int layer, const std::string& name, const struct stat& st, int target, const std::string& rel,
                 bool target_opaque) {
    struct stat existing;
    bool exists = ::fstatat(target, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
    bool layer_opaque = is_opaque_at(layer, name);
    if (exists && S_ISDIR(existing.st_mode) && !layer_opaque) {
      // A merged directory: entries from both, the layer's on top, the layer's attributes.
      bool opaque = target_opaque || is_opaque_at(target, name);
      {
        UniqueFd from = open_dir_at(layer, name);
        UniqueFd into = open_dir_at(target, name);
        merge_dir(from.get(), into.get(), rel, opaque);
      }
      replace_dir_metadata(layer, name, st, target, name);
      return;
    }
    // An opaque dir replaces whatever was there; so does a dir over a non-dir.
    if (exists) remove_entry_at(target, name);
    copier_.copy_entry(layer, name, target, rel);
    // The layer's dir sat on a whiteout or a file of the stack, which hid any rootfs dir of that
    // name; alone over the rootfs it must hide it itself. (overlayfs marks such dirs opaque on
    // creation; this covers layers made any other way.)
    if (exists && !layer_opaque && !target_opaque) set_xattr_at(target, name, kOpaqueXattr, "y");
  }

  // Attributes of a merged dir come from the upper-most layer holding it, except the opacity,
  // which is the union of the layers' (an opaque dir lower in the stack still hides the rootfs).
  void replace_dir_metadata(int layer, const std::string& layer_name, const struct stat& st, int target,
                            const std::string& target_name) {
    Xattrs wanted = read_xattrs_at(layer, layer_name);
    for (const auto& [key, value] : read_xattrs_at(target, target_name)) {
      if (key != kOpaqueXattr && !wanted.contains(key)) remove_xattr_at(target, target_name, key);
    }
    copy_metadata_at(layer, layer_name, st, target, target_name);
  }

  TreeCopier copier_;
};

UniqueFd open_path(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("open {}", path.string()));
  return fd;
}

// dest gets the bottom layer's content as its upper/: a writable snapshot on btrfs, a copy else.
void start_from_bottom(const LayerStore& store, const std::filesystem::path& bottom,
                       const std::filesystem::path& dest) {
  auto subvolume = bottom.parent_path();
  if (store.backend() == Backend::btrfs && btrfs::is_subvolume(subvolume)) {
    btrfs::snapshot_subvolume(subvolume, dest, /*readonly=*/false);
    auto layer = dest / bottom.filename();
    if (layer != dest / "upper") std::filesystem::rename(layer, dest / "upper");
    return;
  }
  store.create_writable(dest);
  std::filesystem::remove(dest / "upper");
  copy_tree(bottom, dest / "upper", store.backend() == Backend::copy ? DataCopy::copy : DataCopy::reflink);
}

}  // namespace

void apply_layer(int layer_dir, int target_dir, bool reflink) {
  LayerApplier applier(reflink ? DataCopy::reflink : DataCopy::copy, target_dir);
  applier.merge_dir(layer_dir, target_dir, "", is_opaque_at(target_dir, "."));
  applier.apply_root_metadata(layer_dir, target_dir);
}

void compact_layers(const LayerStore& store, const std::vector<std::filesystem::path>& layers_top_first,
                    const std::filesystem::path& dest) {
  if (layers_top_first.empty()) fail("compact: no layers");
  try {
    start_from_bottom(store, layers_top_first.back(), dest);
    UniqueFd target = open_path(dest / "upper");
    for (auto layer = layers_top_first.rbegin() + 1; layer != layers_top_first.rend(); ++layer) {
      UniqueFd from = open_path(*layer);
      try {
        apply_layer(from.get(), target.get(), store.backend() != Backend::copy);
      } catch (const Error& e) {
        throw Error(fmt::format("apply layer {}: {}", layer->string(), e.what()), e.code());
      }
    }
    if (store.backend() == Backend::btrfs && btrfs::is_subvolume(dest)) btrfs::set_readonly(dest, true);
  } catch (const Error& e) {
    store.remove(dest);
    throw Error(fmt::format("compact {} layers into {}: {}", layers_top_first.size(), dest.string(), e.what()),
                e.code());
  }
}

}  // namespace deltabox::delta
