#pragma once
// Deduplication of CRIU memory images against the parent snapshot's images. Without soft-dirty
// tracking every dump holds all of the container's memory; sharing the unchanged 4 KiB blocks
// with the parent's files brings a snapshot's disk cost down to the pages that changed.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace deltabox::delta {

inline constexpr size_t kDedupBlock = 4096;
// Shorter matching runs are written rather than cloned: a FICLONERANGE costs tens of µs (a
// btrfs transaction join, an extent item and a backref), so sharing lone 4 KiB blocks among
// scattered dirty pages would cost ~2.5 s per 256 MiB for little disk saved.
inline constexpr size_t kMinCloneRunBlocks = 4;

// Target bytes [target_offset, +length) equal source `source`'s [source_offset, +length).
struct CloneRun {
  uint32_t source = 0;
  uint64_t source_offset = 0;
  uint64_t target_offset = 0;
  uint64_t length = 0;
  bool operator==(const CloneRun&) const = default;
};

// 64-bit hash of one 4 KiB block (xxh64-style lanes; quality only matters for the hit rate,
// every match is verified with memcmp before it is used).
uint64_t block_hash(const std::byte* block);
// block_hash of every full block of data (on several threads when data is large).
std::vector<uint64_t> hash_blocks(std::span<const std::byte> data);

// In-memory index of the full 4 KiB blocks of some source buffers. Pure: no I/O.
class BlockIndex {
 public:
  // Returns the source's id (the CloneRun::source of its matches). data must outlive the index.
  uint32_t add_source(std::span<const std::byte> data);
  // Maximal runs of target blocks verified identical to source blocks, in target order. Only full,
  // 4 KiB-aligned blocks are matched (btrfs clones whole blocks; a file's unaligned tail is left).
  // A run continues in the same source when it can, then tries the same offset of `preferred`
  // (the same-named parent file), then any block with the same hash.
  std::vector<CloneRun> match(std::span<const std::byte> target, int64_t preferred = -1) const;

 private:
  struct Ref {
    uint32_t source;
    uint32_t block;
  };
  void insert(uint64_t hash, Ref ref);
  const Ref* find(uint64_t hash) const;
  void grow();
  bool equal(Ref ref, const std::byte* block) const;

  std::vector<std::span<const std::byte>> sources_;
  std::vector<std::vector<uint64_t>> hashes_;  // per source, per block
  // Open addressing, linear probing; key 0 marks an empty slot (hash 0 is remapped to 1).
  std::vector<uint64_t> keys_;
  std::vector<Ref> refs_;
  size_t used_ = 0;
};

// For every regular file directly in new_dir whose name also exists in parent_dir: share its
// blocks that equal blocks of the parent's file of that name. CRIU "pages-*" files share with
// every parent "pages-*" file, namesake or not: pages move between files when processes come and
// go. Matching runs shorter than kMinCloneRunBlocks are not shared. Returns the bytes now shared.
// A deduplicated file is rebuilt as a new file (clones for matched runs, writes for the rest)
// renamed over the original, so no extent of the original survives half-referenced on btrfs
// ("bookend" extents would keep the whole original extent allocated) and the original's
// still-dirty pages are never written back at all. Files without any match are left untouched.
// Requires both dirs on one reflink-capable filesystem mount (btrfs, XFS); elsewhere it shares
// nothing and returns 0.
uint64_t dedup_against_parent(const std::filesystem::path& new_dir, const std::filesystem::path& parent_dir);

}  // namespace deltabox::delta
