#include "delta/dedup.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "delta/copy.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"

namespace deltabox::delta {
namespace {

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
constexpr const char* kPagesPrefix = "pages-";

uint64_t round(uint64_t acc, uint64_t word) {
  acc += word * kPrime2;
  acc = std::rotl(acc, 31);
  return acc * kPrime1;
}

// 16 MiB: below this, starting threads costs more than it saves.
constexpr size_t kParallelBlocks = 4096;

size_t full_blocks(size_t size) { return size / kDedupBlock; }

// A read-only view of a whole file, kept open for FICLONERANGE.
class MappedFile {
 public:
  static std::optional<MappedFile> open(int dirfd, const std::string& name) {
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return std::nullopt;
    struct stat st;
    if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    MappedFile file;
    file.fd_ = std::move(fd);
    file.size_ = static_cast<size_t>(st.st_size);
    if (file.size_ > 0) {
      // MAP_POPULATE: one pass of faults up front instead of 65,536 minor faults per 256 MiB.
      void* map = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, file.fd_.get(), 0);
      if (map == MAP_FAILED) throw_errno(fmt::format("mmap {}", name));
      file.map_ = static_cast<std::byte*>(map);
      ::madvise(map, file.size_, MADV_SEQUENTIAL);
    }
    return file;
  }
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept
      : fd_(std::move(other.fd_)), map_(std::exchange(other.map_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&&) = delete;
  ~MappedFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  int fd() const { return fd_.get(); }
  std::span<const std::byte> data() const { return {map_, size_}; }

 private:
  UniqueFd fd_;
  std::byte* map_ = nullptr;
  size_t size_ = 0;
};

// The parent files one target may share with, and their index.
struct SourceGroup {
  std::vector<std::string> names;
  std::vector<MappedFile> files;
  BlockIndex index;
};

std::unique_ptr<SourceGroup> load_group(int parent_dir, const std::vector<std::string>& names) {
  auto group = std::make_unique<SourceGroup>();
  for (const std::string& name : names) {
    auto file = MappedFile::open(parent_dir, name);
    if (!file || file->data().size() < kDedupBlock) continue;
    group->names.push_back(name);
    group->files.push_back(std::move(*file));
  }
  for (const MappedFile& file : group->files) group->index.add_source(file.data());
  return group;
}

void clone_range(int target_fd, const MappedFile& source, const CloneRun& run) {
  file_clone_range args{};
  args.src_fd = source.fd();
  args.src_offset = run.source_offset;
  args.src_length = run.length;
  args.dest_offset = run.target_offset;
  check(::ioctl(target_fd, FICLONERANGE, &args), "clone {} bytes at {}", run.length, run.target_offset);
}

void write_range(int fd, std::span<const std::byte> data, uint64_t offset) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("write");
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
}

// Builds the deduplicated copy of dir/name as a temporary file and renames it over the original.
void rebuild_with_clones(int dir, const std::string& name, const MappedFile& original, const SourceGroup& group,
                         const std::vector<CloneRun>& runs) {
  std::string tmp = "." + name + ".dedup";
  ::unlinkat(dir, tmp.c_str(), 0);
  UniqueFd out(::openat(dir, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) throw_errno(fmt::format("create {}", tmp));
  try {
    auto data = original.data();
    check(::ftruncate(out.get(), static_cast<off_t>(data.size())), "truncate {}", tmp);
    uint64_t pos = 0;
    for (const CloneRun& run : runs) {
      if (run.target_offset > pos) write_range(out.get(), data.subspan(pos, run.target_offset - pos), pos);
      clone_range(out.get(), group.files[run.source], run);
      pos = run.target_offset + run.length;
    }
    if (pos < data.size()) write_range(out.get(), data.subspan(pos), pos);
    struct stat st;
    check(::fstat(original.fd(), &st), "stat {}", name);
    copy_metadata_at(dir, name, st, dir, tmp);
    check(::renameat(dir, tmp.c_str(), dir, name.c_str()), "rename {} over {}", tmp, name);
  } catch (...) {
    ::unlinkat(dir, tmp.c_str(), 0);
    throw;
  }
}

bool is_temporary(const std::string& name) { return name.starts_with('.') && name.ends_with(".dedup"); }

// Regular files of the dir; leftovers of an interrupted rebuild are removed on the way.
std::vector<std::string> regular_files(int dirfd) {
  std::vector<std::string> out;
  for (const std::string& name : list_dir(dirfd)) {
    if (is_temporary(name)) {
      ::unlinkat(dirfd, name.c_str(), 0);
      continue;
    }
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) out.push_back(name);
  }
  return out;
}

bool is_pages(const std::string& name) { return name.rfind(kPagesPrefix, 0) == 0; }

}  // namespace

uint64_t block_hash(const std::byte* block) {
  // Four independent lanes keep the multiplier pipeline full.
  uint64_t acc[4] = {kPrime1 + kPrime2, kPrime2, 0, kPrime3};
  for (size_t i = 0; i < kDedupBlock; i += 32) {
    uint64_t w[4];
    std::memcpy(w, block + i, sizeof w);
    for (int lane = 0; lane < 4; ++lane) acc[lane] = round(acc[lane], w[lane]);
  }
  uint64_t h = std::rotl(acc[0], 1) + std::rotl(acc[1], 7) + std::rotl(acc[2], 12) + std::rotl(acc[3], 18);
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  return h;
}

std::vector<uint64_t> hash_blocks(std::span<const std::byte> data) {
  size_t blocks = full_blocks(data.size());
  std::vector<uint64_t> hashes(blocks);
  auto hash_range = [&](size_t begin, size_t end) {
    for (size_t b = begin; b < end; ++b) hashes[b] = block_hash(data.data() + b * kDedupBlock);
  };
  // Hashing is the bulk of the CPU work; a memory image is large enough to split across cores.
  size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), 4);
  if (blocks < kParallelBlocks || threads == 1) {
    hash_range(0, blocks);
    return hashes;
  }
  std::vector<std::thread> workers;
  size_t per = (blocks + threads - 1) / threads;
  for (size_t t = 1; t < threads; ++t)
    workers.emplace_back(hash_range, std::min(blocks, t * per), std::min(blocks, (t + 1) * per));
  hash_range(0, std::min(blocks, per));
  for (auto& worker : workers) worker.join();
  return hashes;
}

uint32_t BlockIndex::add_source(std::span<const std::byte> data) {
  auto id = static_cast<uint32_t>(sources_.size());
  sources_.push_back(data);
  std::vector<uint64_t> hashes = hash_blocks(data);
  for (size_t b = 0; b < hashes.size(); ++b) insert(hashes[b], Ref{id, static_cast<uint32_t>(b)});
  hashes_.push_back(std::move(hashes));
  return id;
}

void BlockIndex::grow() {
  std::vector<uint64_t> keys = std::move(keys_);
  std::vector<Ref> refs = std::move(refs_);
  keys_.assign(keys.empty() ? 1024 : keys.size() * 2, 0);
  refs_.assign(keys_.size(), Ref{});
  used_ = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] != 0) insert(keys[i], refs[i]);
  }
}

void BlockIndex::insert(uint64_t hash, Ref ref) {
  if (hash == 0) hash = 1;
  if ((used_ + 1) * 2 > keys_.size()) grow();
  size_t mask = keys_.size() - 1;
  for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
    if (keys_[slot] == hash) return;  // keep the first block with this content
    if (keys_[slot] == 0) {
      keys_[slot] = hash;
      refs_[slot] = ref;
      ++used_;
      return;
    }
  }
}

const BlockIndex::Ref* BlockIndex::find(uint64_t hash) const {
  if (keys_.empty()) return nullptr;
  if (hash == 0) hash = 1;
  size_t mask = keys_.size() - 1;
  for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
    if (keys_[slot] == hash) return &refs_[slot];
    if (keys_[slot] == 0) return nullptr;
  }
}

bool BlockIndex::equal(Ref ref, const std::byte* block) const {
  return std::memcmp(sources_[ref.source].data() + size_t{ref.block} * kDedupBlock, block, kDedupBlock) == 0;
}

std::vector<CloneRun> BlockIndex::match(std::span<const std::byte> target, int64_t preferred) const {
  std::vector<CloneRun> runs;
  std::optional<Ref> previous;
  auto candidate_at = [&](uint32_t source, size_t block, uint64_t hash, const std::byte* data) -> std::optional<Ref> {
    if (block >= hashes_[source].size() || hashes_[source][block] != hash) return std::nullopt;
    Ref ref{source, static_cast<uint32_t>(block)};
    return equal(ref, data) ? std::optional<Ref>(ref) : std::nullopt;
  };
  std::vector<uint64_t> hashes = hash_blocks(target);
  for (size_t b = 0; b < hashes.size(); ++b) {
    const std::byte* data = target.data() + b * kDedupBlock;
    uint64_t hash = hashes[b];
    std::optional<Ref> found;
    if (previous) found = candidate_at(previous->source, size_t{previous->block} + 1, hash, data);
    if (!found && preferred >= 0 && static_cast<size_t>(preferred) < sources_.size()) {
      found = candidate_at(static_cast<uint32_t>(preferred), b, hash, data);
    }
    if (!found) {
      const Ref* ref = find(hash);
      if (ref != nullptr && equal(*ref, data)) found = *ref;
    }
    previous = found;
    if (!found) continue;
    uint64_t source_offset = uint64_t{found->block} * kDedupBlock;
    uint64_t target_offset = uint64_t{b} * kDedupBlock;
    if (!runs.empty()) {
      CloneRun& last = runs.back();
      if (last.source == found->source && last.source_offset + last.length == source_offset &&
          last.target_offset + last.length == target_offset) {
        last.length += kDedupBlock;
        continue;
      }
    }
    runs.push_back(CloneRun{found->source, source_offset, target_offset, kDedupBlock});
  }
  return runs;
}

uint64_t dedup_against_parent(const std::filesystem::path& new_dir, const std::filesystem::path& parent_dir) {
  UniqueFd target_dir(::open(new_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!target_dir) throw_errno(fmt::format("open {}", new_dir.string()));
  UniqueFd parent(::open(parent_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent) throw_errno(fmt::format("open {}", parent_dir.string()));

  std::vector<std::string> parent_files = regular_files(parent.get());
  std::vector<std::string> parent_pages;
  for (const auto& name : parent_files) {
    if (is_pages(name)) parent_pages.push_back(name);
  }
  std::map<std::string, std::unique_ptr<SourceGroup>> groups;  // "pages-" or the file's own name
  uint64_t shared = 0;
  for (const std::string& name : regular_files(target_dir.get())) {
    bool in_parent = std::binary_search(parent_files.begin(), parent_files.end(), name);
    // A pages file without a namesake still shares with the parent's pages files: CRIU numbers
    // them by image id, which moves when processes come and go.
    if (!in_parent && !(is_pages(name) && !parent_pages.empty())) continue;
    auto target = MappedFile::open(target_dir.get(), name);
    if (!target || target->data().size() < kDedupBlock) continue;
    std::string key = is_pages(name) ? kPagesPrefix : name;
    auto& group = groups[key];
    if (!group) group = load_group(parent.get(), is_pages(name) ? parent_pages : std::vector<std::string>{name});
    auto same_name = std::find(group->names.begin(), group->names.end(), name);
    int64_t preferred = same_name == group->names.end() ? -1 : same_name - group->names.begin();
    std::vector<CloneRun> runs = group->index.match(target->data(), preferred);
    std::erase_if(runs, [](const CloneRun& run) { return run.length < kMinCloneRunBlocks * kDedupBlock; });
    if (runs.empty()) continue;
    try {
      rebuild_with_clones(target_dir.get(), name, *target, *group, runs);
    } catch (const Error& e) {
      if (e.code() == EOPNOTSUPP || e.code() == EXDEV || e.code() == EINVAL || e.code() == ENOTTY) {
        log::debug("dedup {}: no block sharing here ({})", (new_dir / name).string(), e.what());
        return shared;
      }
      throw Error(fmt::format("dedup {}: {}", (new_dir / name).string(), e.what()), e.code());
    }
    for (const CloneRun& run : runs) shared += run.length;
  }
  return shared;
}

}  // namespace deltabox::delta
