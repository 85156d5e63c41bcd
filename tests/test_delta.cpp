// DeltaFS storage: pure logic (overlay option list, dedup block index, store paths) and live runs
// on real filesystems. Every live test runs in a forked child that unshared its mount namespace
// and made "/" private first, so no mount it makes (store image, tmpfs, overlays) reaches the
// host; the loop devices it binds are autoclear and vanish with that namespace.
#include <doctest.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "delta/btrfs.hpp"
#include "delta/delta.hpp"
#include "delta/loop.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace fs = std::filesystem;
using namespace deltabox;
using namespace deltabox::delta;

namespace {

// ---------------------------------------------------------------------------------------------
// Running a body isolated in its own mount namespace; failures and measurements come back as
// lines on a pipe ("measure: ..." lines are printed, every other line fails the test).
// ---------------------------------------------------------------------------------------------

int g_delta_report_fd = -1;

void delta_report(const std::string& line) {
  std::string text = line + "\n";
  (void)!::write(g_delta_report_fd, text.data(), text.size());
}

template <typename... Args>
void measure(fmt::format_string<Args...> format, Args&&... args) {
  delta_report("measure: " + fmt::format(format, std::forward<Args>(args)...));
}

#define DELTA_EXPECT(cond)                                                             \
  do {                                                                                 \
    if (!(cond)) delta_report(fmt::format("line {}: expected {}", __LINE__, #cond));   \
  } while (0)

#define DELTA_EXPECT_MSG(cond, ...)                                                             \
  do {                                                                                          \
    if (!(cond)) delta_report(fmt::format("line {}: expected {}: {}", __LINE__, #cond, fmt::format(__VA_ARGS__))); \
  } while (0)

struct IsolatedResult {
  int exit_code = -1;
  std::vector<std::string> failures;
  std::vector<std::string> measurements;
};

IsolatedResult run_in_private_mount_ns(const std::function<void()>& body) {
  int pipefd[2];
  REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(pipefd[0]);
    g_delta_report_fd = pipefd[1];
    if (::unshare(CLONE_NEWNS) < 0) {
      delta_report(fmt::format("unshare: {}", std::strerror(errno)));
      ::_exit(2);
    }
    // Before anything else: nothing mounted here may propagate back to the host.
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
      delta_report(fmt::format("make / private: {}", std::strerror(errno)));
      ::_exit(2);
    }
    int code = 0;
    try {
      body();
    } catch (const std::exception& e) {
      delta_report(std::string("exception: ") + e.what());
      code = 1;
    }
    ::_exit(code);
  }
  ::close(pipefd[1]);
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  IsolatedResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("measure: ", 0) == 0) {
      result.measurements.push_back(line.substr(9));
    } else {
      result.failures.push_back(line);
    }
  }
  return result;
}

void check_isolated(const IsolatedResult& result) {
  for (const auto& m : result.measurements) MESSAGE(m);
  for (const auto& f : result.failures) FAIL_CHECK(f);
  CHECK(result.exit_code == 0);
}

struct DeltaTempDir {
  fs::path path;
  DeltaTempDir() {
    char tmpl[] = "/tmp/delta-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~DeltaTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool running_as_root() { return ::geteuid() == 0; }

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Waits (briefly) for the kernel to autoclear a loop device after its namespace went away.
bool loop_released(const fs::path& image) {
  for (int i = 0; i < 100; ++i) {
    if (!find_loop_device(image)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Small file helpers and a comparable description of a whole tree.
// ---------------------------------------------------------------------------------------------

void put(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw Error("write " + path.string());
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void tmpfs_at(const fs::path& dir) {
  fs::create_directories(dir);
  check(::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=2g"), "mount tmpfs at {}", dir.string());
}

void unmount(const fs::path& dir) { check(::umount2(dir.c_str(), 0), "umount {}", dir.string()); }

uint64_t fnv1a(const std::string& data) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::string xattr_list(const fs::path& path) {
  char names[4096];
  ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
  if (n <= 0) return "";
  std::vector<std::string> keys;
  for (ssize_t pos = 0; pos < n;) {
    std::string key = names + pos;
    pos += static_cast<ssize_t>(key.size()) + 1;
    if (key.rfind("security.", 0) == 0) continue;
    char value[256];
    ssize_t len = ::lgetxattr(path.c_str(), key.c_str(), value, sizeof value);
    keys.push_back(key + "=" + std::string(value, static_cast<size_t>(std::max<ssize_t>(len, 0))));
  }
  std::sort(keys.begin(), keys.end());
  std::string out;
  for (auto& k : keys) out += " " + k;
  return out;
}

// relative path ("/" for the root) -> type, mode, owner, mtime, content hash / target / rdev,
// xattrs.
using TreeView = std::map<std::string, std::string>;

TreeView describe(const fs::path& root) {
  TreeView out;
  std::vector<fs::path> paths{root};
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    paths.push_back(it->path());
  }
  for (const fs::path& p : paths) {
    struct stat st;
    check(::lstat(p.c_str(), &st), "lstat {}", p.string());
    std::string desc = fmt::format("mode={:o} uid={} gid={} mtime={}.{}", st.st_mode, st.st_uid, st.st_gid,
                                   st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) {
      std::string data = slurp(p);
      desc += fmt::format(" size={} hash={:x}", data.size(), fnv1a(data));
    } else if (S_ISLNK(st.st_mode)) {
      desc += " -> " + fs::read_symlink(p).string();
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      desc += fmt::format(" rdev={}:{}", major(st.st_rdev), minor(st.st_rdev));
    }
    desc += xattr_list(p);
    out[p == root ? "/" : fs::relative(p, root).string()] = desc;
  }
  return out;
}

// Reports the first differences between two views.
bool same_view(const TreeView& got, const TreeView& want, const std::string& what) {
  if (got == want) return true;
  int shown = 0;
  for (const auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      if (shown++ < 8) delta_report(fmt::format("{}: missing {} ({})", what, k, v));
    } else if (it->second != v) {
      if (shown++ < 8) delta_report(fmt::format("{}: {} differs: got {} want {}", what, k, it->second, v));
    }
  }
  for (const auto& [k, v] : got) {
    if (!want.contains(k) && shown++ < 8) delta_report(fmt::format("{}: unexpected {} ({})", what, k, v));
  }
  return false;
}

bool is_whiteout_at(const fs::path& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool is_opaque(const fs::path& path) {
  char value[4];
  return ::lgetxattr(path.c_str(), "trusted.overlay.opaque", value, sizeof value) == 1 && value[0] == 'y';
}

// ---------------------------------------------------------------------------------------------
// The container-side scenario: a bundle rootfs, an overlay over it, snapshots and rollbacks.
// ---------------------------------------------------------------------------------------------

void make_bundle_rootfs(const fs::path& rootfs) {
  fs::create_directories(rootfs / "etc");
  fs::create_directories(rootfs / "data/sub");
  fs::create_directories(rootfs / "var/log");
  fs::create_directories(rootfs / "opt/tool");
  put(rootfs / "etc/hostname", "bundle\n");
  put(rootfs / "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  put(rootfs / "data/a.txt", "a from rootfs\n");
  put(rootfs / "data/b.txt", "b from rootfs\n");
  put(rootfs / "data/sub/deep.txt", "deep\n");
  put(rootfs / "var/log/old.log", "old\n");
  put(rootfs / "opt/tool/bin", "#!/bin/sh\n");
  put(rootfs / "opt/tool/lib", "lib\n");
  put(rootfs / "replaced", "a file in the rootfs that becomes a dir\n");
  fs::create_symlink("data/a.txt", rootfs / "link-a");
}

struct Container {
  const LayerStore& store;
  fs::path mountpoint;
  std::vector<fs::path> chain;  // lowers, top first, rootfs last
  fs::path layer;               // the writable layer (upper/ + work/)
  bool mounted = false;

  // Mounts a fresh writable layer over `lowers` at the mountpoint.
  void start(const std::vector<fs::path>& lowers, const fs::path& writable) {
    chain = lowers;
    layer = writable;
    store.create_writable(layer, chain.front());
    fs::create_directories(mountpoint);
    mount_overlay_at(OverlayLayers{chain, layer / "upper", layer / "work"}, mountpoint);
    mounted = true;
  }
  // Snapshot of the writable layer; returns the new chain (snapshot's layer on top of this chain).
  std::vector<fs::path> snapshot(const fs::path& dest, double* ms = nullptr) {
    store.flush(layer);
    auto t0 = std::chrono::steady_clock::now();
    store.snapshot(layer, dest);
    if (ms) *ms = ms_since(t0);
    std::vector<fs::path> out{dest / "upper"};
    out.insert(out.end(), chain.begin(), chain.end());
    return out;
  }
  void stop() {
    if (mounted) unmount(mountpoint);
    mounted = false;
  }
  TreeView view() const { return describe(mountpoint); }
};

// Mounts a fresh upper over `chain` and compares the view.
void expect_rollback_view(const LayerStore& store, const fs::path& scratch, const std::vector<fs::path>& chain,
                          const TreeView& want, const std::string& what) {
  static int counter = 0;
  auto layer = scratch / fmt::format("rollback-{}", counter);
  auto mnt = scratch / fmt::format("rollback-mnt-{}", counter++);
  store.create_writable(layer, chain.front());
  fs::create_directories(mnt);
  mount_overlay_at(OverlayLayers{chain, layer / "upper", layer / "work"}, mnt);
  same_view(describe(mnt), want, what);
  // The rolled-back container accepts writes, including deleting a lower file.
  put(mnt / "after-rollback", "x");
  if (fs::exists(mnt / "etc/hostname")) fs::remove(mnt / "etc/hostname");
  DELTA_EXPECT(!fs::exists(mnt / "etc/hostname"));
  unmount(mnt);
  store.remove(layer);
}

// Generation 0 over the rootfs: new files, a modified file, a deleted rootfs file (whiteout), a
// dir replaced by an opaque one, a rootfs file replaced by a dir, xattrs, modes, links.
void write_generation_a(const fs::path& mnt) {
  put(mnt / "data/a.txt", "a modified in A\n");
  fs::remove(mnt / "data/b.txt");
  fs::remove_all(mnt / "opt/tool");
  fs::create_directory(mnt / "opt/tool");
  put(mnt / "opt/tool/new-bin", "new tool\n");
  fs::remove(mnt / "replaced");
  fs::create_directories(mnt / "replaced/inside");
  put(mnt / "replaced/inside/f", "f\n");
  put(mnt / "var/log/app.log", std::string(200000, 'L'));
  fs::create_directories(mnt / "home/user");
  put(mnt / "home/user/notes", "notes A\n");
  fs::create_hard_link(mnt / "home/user/notes", mnt / "home/user/notes-link");
  fs::create_symlink("/etc/hostname", mnt / "home/user/host-link");
  ::chmod((mnt / "home/user").c_str(), 0710);
  ::chown((mnt / "home/user/notes").c_str(), 1000, 1000);
  check(::setxattr((mnt / "home/user/notes").c_str(), "user.tag", "A", 1, 0), "setxattr");
  check(::mkfifo((mnt / "home/user/fifo").c_str(), 0600), "mkfifo");
  // Attributes of "/" itself live in the upper's root dir and must survive a rollback.
  check(::chmod(mnt.c_str(), 0751), "chmod /");
}

// Generation 1 (over A): recreate the deleted rootfs file, delete an A-file and a rootfs file,
// make a rootfs dir opaque, replace a dir of A by a file, add a dir under a rootfs dir.
void write_generation_b(const fs::path& mnt) {
  put(mnt / "data/b.txt", "b recreated in B\n");
  fs::remove(mnt / "home/user/notes-link");
  fs::remove(mnt / "etc/passwd");
  fs::remove_all(mnt / "data/sub");
  fs::create_directory(mnt / "data/sub");
  put(mnt / "data/sub/only-b", "b\n");
  fs::remove_all(mnt / "replaced");
  put(mnt / "replaced", "a file again in B\n");
  fs::create_directories(mnt / "var/log/b");
  put(mnt / "var/log/b/b.log", "b log\n");
  check(::setxattr((mnt / "var/log").c_str(), "user.dir", "B", 1, 0), "setxattr dir");
}

// Generation 2 (over B, A): delete a B-file, a dir over a B-file, modify an A-file, delete a
// whole rootfs dir, rename.
void write_generation_c(const fs::path& mnt) {
  fs::remove(mnt / "data/sub/only-b");
  fs::remove(mnt / "replaced");
  fs::create_directory(mnt / "replaced");
  put(mnt / "replaced/c", "c\n");
  put(mnt / "home/user/notes", "notes C\n");
  fs::remove_all(mnt / "opt");
  fs::rename(mnt / "var/log/app.log", mnt / "var/log/app.log.1");
  put(mnt / "new-in-c", "c\n");
}

struct Generations {
  std::vector<fs::path> chain_a, chain_b, chain_c;
  TreeView view_a, view_b, view_c;
};

// Builds snapshots A, B, C where B was taken after rolling back to A and C after rolling back to
// B: chains [A], [B, A], [C, B, A] over the rootfs.
Generations build_generations(const LayerStore& store, const fs::path& scratch, const fs::path& rootfs) {
  Generations g;
  Container c{store, scratch / "mnt"};
  c.start({rootfs}, scratch / "gen0");
  write_generation_a(c.mountpoint);
  g.view_a = c.view();
  g.chain_a = c.snapshot(scratch / "A");
  put(c.mountpoint / "data/after-a", "should not be in A\n");  // the running container goes on
  c.stop();

  c.start(g.chain_a, scratch / "gen1");
  write_generation_b(c.mountpoint);
  g.view_b = c.view();
  g.chain_b = c.snapshot(scratch / "B");
  c.stop();

  c.start(g.chain_b, scratch / "gen2");
  write_generation_c(c.mountpoint);
  g.view_c = c.view();
  g.chain_c = c.snapshot(scratch / "C");
  c.stop();
  return g;
}

// The whole storage scenario on one store: snapshot/rollback views, generations, compaction.
void storage_scenario(const LayerStore& store, const fs::path& scratch, const fs::path& rootfs,
                      const std::string& label) {
  make_bundle_rootfs(rootfs);

  // --- snapshot and rollback on one writable layer ---
  Container c{store, scratch / "main-mnt"};
  c.start({rootfs}, scratch / "c1");
  write_generation_a(c.mountpoint);
  // The layer format overlayfs produced, which every later step relies on.
  DELTA_EXPECT(is_whiteout_at(c.layer / "upper/data/b.txt"));
  DELTA_EXPECT(is_opaque(c.layer / "upper/opt/tool"));
  DELTA_EXPECT(is_opaque(c.layer / "upper/replaced"));
  TreeView state1 = c.view();
  DELTA_EXPECT(!state1.contains("data/b.txt"));
  DELTA_EXPECT(!state1.contains("opt/tool/bin"));
  double snap1_ms = 0, snap2_ms = 0;
  auto chain1 = c.snapshot(scratch / "s1", &snap1_ms);
  put(c.mountpoint / "later.txt", "written after s1\n");
  fs::remove(c.mountpoint / "etc/hostname");
  put(c.mountpoint / "data/a.txt", "a modified after s1\n");
  fs::create_directories(c.mountpoint / "later-dir/x");
  TreeView state2 = c.view();
  auto chain2 = c.snapshot(scratch / "s2", &snap2_ms);
  put(c.mountpoint / "even-later.txt", "after s2\n");
  measure("{}: snapshot of a writable layer: {:.2f} ms (first), {:.2f} ms (second)", label, snap1_ms, snap2_ms);
  c.stop();

  expect_rollback_view(store, scratch, chain1, state1, label + " rollback to s1");
  expect_rollback_view(store, scratch, chain2, state2, label + " rollback to s2");
  expect_rollback_view(store, scratch, chain1, state1, label + " rollback to s1 again");

  // --- three generations: rollback, write, snapshot, rollback... ---
  Generations g = build_generations(store, scratch, rootfs);
  DELTA_EXPECT(g.chain_c.size() == 4);
  expect_rollback_view(store, scratch, g.chain_a, g.view_a, label + " generation A");
  expect_rollback_view(store, scratch, g.chain_b, g.view_b, label + " generation B");
  expect_rollback_view(store, scratch, g.chain_c, g.view_c, label + " generation C");

  // --- compaction: [C, B, A] flattened equals the stack ---
  std::vector<fs::path> stack(g.chain_c.begin(), g.chain_c.end() - 1);
  auto t0 = std::chrono::steady_clock::now();
  compact_layers(store, stack, scratch / "K");
  measure("{}: compaction of 3 layers: {:.2f} ms", label, ms_since(t0));
  expect_rollback_view(store, scratch, {scratch / "K/upper", rootfs}, g.view_c, label + " compacted [C,B,A]");
  std::vector<fs::path> stack_ba(g.chain_b.begin(), g.chain_b.end() - 1);
  compact_layers(store, stack_ba, scratch / "KB");
  expect_rollback_view(store, scratch, {scratch / "KB/upper", rootfs}, g.view_b, label + " compacted [B,A]");
  // A compacted layer is an ordinary layer: a rollback can stack on it.
  Container k{store, scratch / "k-mnt"};
  k.start({scratch / "KB/upper", rootfs}, scratch / "on-kb");
  write_generation_c(k.mountpoint);
  TreeView on_kb = k.view();
  auto chain_kb = k.snapshot(scratch / "KC");
  k.stop();
  expect_rollback_view(store, scratch, chain_kb, on_kb, label + " snapshot over a compacted layer");
  if (store.backend() == Backend::btrfs) {
    DELTA_EXPECT(btrfs::is_readonly(scratch / "K"));
    DELTA_EXPECT(btrfs::is_readonly(scratch / "s1"));
  }

  // The source layers are untouched by compaction.
  expect_rollback_view(store, scratch, g.chain_c, g.view_c, label + " generation C after compaction");

  // --- removal, including read-only snapshots; idempotent ---
  for (const char* name : {"s1", "s2", "A", "B", "C", "K", "KB", "KC", "c1", "gen0"}) {
    store.remove(scratch / name);
    DELTA_EXPECT_MSG(!fs::exists(scratch / name), "{} removed", name);
    store.remove(scratch / name);
  }
}

}  // namespace

// =============================================================================================
// Pure logic
// =============================================================================================

TEST_CASE("delta: overlay config passes each lower with lowerdir+, top first, and safe options") {
  OverlayLayers layers{{"/s/3/upper", "/s/2/upper", "/bundle/rootfs"}, "/c/upper", "/c/work"};
  auto config = overlay_config(layers);
  REQUIRE(config.size() >= 5);
  CHECK(config[0] == std::pair<std::string, std::string>{"lowerdir+", "/s/3/upper"});
  CHECK(config[1] == std::pair<std::string, std::string>{"lowerdir+", "/s/2/upper"});
  CHECK(config[2] == std::pair<std::string, std::string>{"lowerdir+", "/bundle/rootfs"});
  CHECK(config[3] == std::pair<std::string, std::string>{"upperdir", "/c/upper"});
  CHECK(config[4] == std::pair<std::string, std::string>{"workdir", "/c/work"});
  std::map<std::string, std::string> options(config.begin() + 5, config.end());
  CHECK(options["index"] == "off");
  CHECK(options["redirect_dir"] == "off");
  CHECK(options["metacopy"] == "off");
  CHECK(options["nfs_export"] == "off");
  CHECK(options.contains("xino"));
}

TEST_CASE("delta: overlay config accepts paths legacy option strings cannot carry") {
  OverlayLayers layers{{"/s/with:colon,comma/upper", "/rootfs"}, "/c/upper", "/c/work"};
  CHECK(overlay_config(layers)[0].second == "/s/with:colon,comma/upper");
}

TEST_CASE("delta: overlay config rejects unusable stacks with clear errors") {
  OverlayLayers none{{}, "/u", "/w"};
  CHECK_THROWS_WITH_AS(overlay_config(none), doctest::Contains("no lower layers"), Error);
  OverlayLayers too_many{std::vector<fs::path>(kMaxOverlayLowers + 1, "/l"), "/u", "/w"};
  CHECK_THROWS_WITH_AS(overlay_config(too_many), doctest::Contains("501 lower layers exceed overlayfs' limit of 500"),
                       Error);
  OverlayLayers at_limit{std::vector<fs::path>(kMaxOverlayLowers, "/l"), "/u", "/w"};
  CHECK(overlay_config(at_limit).size() == kMaxOverlayLowers + 2 + 5);
  OverlayLayers no_work{{"/l"}, "/u", ""};
  CHECK_THROWS_WITH_AS(overlay_config(no_work), doctest::Contains("together"), Error);
  OverlayLayers lone_lower{{"/l"}, "", ""};
  CHECK_THROWS_WITH_AS(overlay_config(lone_lower), doctest::Contains("two lowers"), Error);
  OverlayLayers read_only{{"/l1", "/l2"}, "", ""};
  CHECK(overlay_config(read_only).size() == 2 + 5);
}

TEST_CASE("delta: store image and lock live next to the store dir, never inside it") {
  CHECK(LayerStore::image_path("/var/lib/deltabox") == "/var/lib/deltabox.img");
  CHECK(LayerStore::image_path("/var/lib/deltabox/") == "/var/lib/deltabox.img");
  CHECK(LayerStore::lock_path("/var/lib/deltabox") == "/var/lib/deltabox.lock");
  CHECK(std::string(backend_name(Backend::reflink)) == "reflink");
}

namespace {

std::vector<std::byte> random_bytes(size_t size, uint64_t seed) {
  std::vector<std::byte> out(size);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (size_t i = size - size % 8; i < size; ++i) out[i] = std::byte(rng() & 0xff);
  return out;
}

std::span<const std::byte> span_of(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

}  // namespace

TEST_CASE("delta: block hash tells blocks apart and is stable") {
  auto a = random_bytes(2 * kDedupBlock, 1);
  CHECK(block_hash(a.data()) == block_hash(a.data()));
  CHECK(block_hash(a.data()) != block_hash(a.data() + kDedupBlock));
  auto b = a;
  b[100] ^= std::byte{1};
  CHECK(block_hash(a.data()) != block_hash(b.data()));
}

TEST_CASE("delta: block index matches identical, changed and shifted blocks into maximal runs") {
  const size_t B = kDedupBlock;
  auto parent = random_bytes(64 * B, 7);
  BlockIndex index;
  REQUIRE(index.add_source(span_of(parent)) == 0);

  SUBCASE("identical file: one run") {
    auto runs = index.match(span_of(parent), 0);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0] == CloneRun{0, 0, 0, 64 * B});
  }
  SUBCASE("changed blocks split runs and are not matched") {
    auto target = parent;
    target[5 * B + 17] ^= std::byte{0xff};
    target[40 * B] ^= std::byte{0xff};
    auto runs = index.match(span_of(target), 0);
    REQUIRE(runs.size() == 3);
    CHECK(runs[0] == CloneRun{0, 0, 0, 5 * B});
    CHECK(runs[1] == CloneRun{0, 6 * B, 6 * B, 34 * B});
    CHECK(runs[2] == CloneRun{0, 41 * B, 41 * B, 23 * B});
  }
  SUBCASE("content shifted by whole blocks is found at its new offset") {
    auto fresh = random_bytes(3 * B, 99);
    std::vector<std::byte> target(fresh);
    target.insert(target.end(), parent.begin(), parent.begin() + 10 * B);
    auto runs = index.match(span_of(target), 0);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0] == CloneRun{0, 0, 3 * B, 10 * B});
  }
  SUBCASE("an unaligned tail is never matched") {
    std::vector<std::byte> target(parent.begin(), parent.begin() + 2 * B + 100);
    auto runs = index.match(span_of(target), 0);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].length == 2 * B);
  }
  SUBCASE("content not aligned to blocks is not matched") {
    std::vector<std::byte> target(parent.begin() + 512, parent.begin() + 512 + 8 * B);
    CHECK(index.match(span_of(target), 0).empty());
  }
}

TEST_CASE("delta: block index matches across sources and prefers the same-named file's offset") {
  const size_t B = kDedupBlock;
  auto zeros = std::vector<std::byte>(8 * B);
  auto other = random_bytes(8 * B, 3);
  BlockIndex index;
  uint32_t first = index.add_source(span_of(zeros));
  uint32_t second = index.add_source(span_of(other));
  // Blocks of `other` plus zero blocks: with `second` preferred, zero blocks still come from the
  // first source (only it has them), the rest from `second` at the same offsets.
  std::vector<std::byte> target(other.begin(), other.begin() + 4 * B);
  target.insert(target.end(), zeros.begin(), zeros.begin() + 2 * B);
  auto runs = index.match(span_of(target), second);
  REQUIRE(runs.size() == 2);
  CHECK(runs[0] == CloneRun{second, 0, 0, 4 * B});
  CHECK(runs[1] == CloneRun{first, 0, 4 * B, 2 * B});
}

// =============================================================================================
// Live: btrfs store on its own loop image
// =============================================================================================

TEST_CASE("delta: LayerStore::open makes, mounts and reuses a loop-backed btrfs store") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    auto dir = tmp.path / "store";
    auto t0 = std::chrono::steady_clock::now();
    LayerStore store = LayerStore::open(dir, {.image_size = uint64_t{1} << 30});
    measure("LayerStore::open creating image + mkfs.btrfs + loop + mount: {:.1f} ms", ms_since(t0));
    DELTA_EXPECT(store.backend() == Backend::btrfs);
    DELTA_EXPECT(btrfs::is_btrfs(dir));
    DELTA_EXPECT(fs::exists(tmp.path / "store.img"));
    DELTA_EXPECT(fs::exists(tmp.path / "store.lock"));
    auto device = find_loop_device(tmp.path / "store.img");
    DELTA_EXPECT(device.has_value());
    if (device) DELTA_EXPECT(loop_autoclear(*device));
    // Sparse: the 1 GiB image holds only what mkfs wrote.
    struct stat st;
    check(::stat((tmp.path / "store.img").c_str(), &st), "stat image");
    DELTA_EXPECT_MSG(static_cast<uint64_t>(st.st_blocks) * 512 < (uint64_t{64} << 20), "image uses {} bytes",
                     st.st_blocks * 512);

    auto count_mounts = [&](const fs::path& at) {
      std::ifstream in("/proc/self/mountinfo");
      int n = 0;
      for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::string a, b, c, d, mp;
        fields >> a >> b >> c >> d >> mp;
        if (mp == at.string()) ++n;
      }
      return n;
    };
    t0 = std::chrono::steady_clock::now();
    LayerStore again = LayerStore::open(dir);
    measure("LayerStore::open of a mounted store: {:.3f} ms", ms_since(t0));
    DELTA_EXPECT(again.backend() == Backend::btrfs);
    DELTA_EXPECT(count_mounts(dir) == 1);

    // Concurrent first opens from separate processes: one image, one mount, all succeed.
    auto racy = tmp.path / "racy";
    std::vector<pid_t> pids;
    for (int i = 0; i < 4; ++i) {
      pid_t pid = ::fork();
      if (pid == 0) {
        try {
          ::_exit(LayerStore::open(racy, {.image_size = uint64_t{1} << 30}).backend() == Backend::btrfs ? 0 : 3);
        } catch (const std::exception& e) {
          delta_report(std::string("racing open: ") + e.what());
          ::_exit(1);
        }
      }
      pids.push_back(pid);
    }
    for (pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      DELTA_EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    DELTA_EXPECT(count_mounts(racy) == 1);
    DELTA_EXPECT(btrfs::is_btrfs(racy));

    // Snapshot cost with and without barriers (each snapshot is a transaction commit).
    auto snapshot_ms = [](const LayerStore& st) {
      st.create_writable(st.root() / "timed");
      double total = 0;
      for (int i = 0; i < 10; ++i) {
        put(st.root() / "timed/upper/f", std::to_string(i));
        st.flush(st.root() / "timed");
        auto start = std::chrono::steady_clock::now();
        st.snapshot(st.root() / "timed", st.root() / fmt::format("timed-{}", i));
        total += ms_since(start);
      }
      return total / 10;
    };
    auto fast_dir = tmp.path / "fast";
    LayerStore fast = LayerStore::open(fast_dir, {.image_size = uint64_t{1} << 30, .barriers = false});
    DELTA_EXPECT(fast.backend() == Backend::btrfs);
    {
      std::ifstream in("/proc/self/mountinfo");
      bool nobarrier = false;
      for (std::string line; std::getline(in, line);) {
        if (line.find(" " + fast_dir.string() + " ") != std::string::npos)
          nobarrier = line.find("nobarrier") != std::string::npos;
      }
      DELTA_EXPECT(nobarrier);
    }
    measure("btrfs snapshot, small change, flushed first, mean of 10: {:.2f} ms with barriers, {:.2f} ms nobarrier",
            snapshot_ms(store), snapshot_ms(fast));
    unmount(fast_dir);

    // After an unmount (a reboot, say) the existing image is mounted again, with its content.
    again.create_writable(dir / "kept");
    put(dir / "kept/upper/file", "still here");
    unmount(dir);
    DELTA_EXPECT(!btrfs::is_btrfs(dir));
    LayerStore reopened = LayerStore::open(dir);
    DELTA_EXPECT(reopened.backend() == Backend::btrfs);
    DELTA_EXPECT(slurp(dir / "kept/upper/file") == "still here");
    unmount(dir);
    unmount(racy);
  });
  check_isolated(result);
  CHECK(loop_released(tmp.path / "store.img"));
  CHECK(loop_released(tmp.path / "racy.img"));
  CHECK(loop_released(tmp.path / "fast.img"));
}

TEST_CASE("delta: LayerStore::open never mounts over a non-btrfs store that holds files") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    tmpfs_at(tmp.path / "t");
    fs::create_directories(tmp.path / "t/store/layer");
    LayerStore store = LayerStore::open(tmp.path / "t/store");
    DELTA_EXPECT(store.backend() == Backend::copy);
    DELTA_EXPECT(!fs::exists(tmp.path / "t/store.img"));
    DELTA_EXPECT(fs::exists(tmp.path / "t/store/layer"));
    LayerStore plain = LayerStore::open(tmp.path / "t/plain", {.create_loop_image = false});
    DELTA_EXPECT(plain.backend() == Backend::copy);
    // An image next to a non-empty dir: ambiguous, refused rather than hiding either.
    fs::create_directories(tmp.path / "t/both/x");
    put(tmp.path / "t/both.img", "");
    try {
      LayerStore::open(tmp.path / "t/both");
      DELTA_EXPECT(false && "opened a store with both an image and files");
    } catch (const Error& e) {
      DELTA_EXPECT_MSG(std::string(e.what()).find("refusing") != std::string::npos, "{}", e.what());
    }
  });
  check_isolated(result);
}

TEST_CASE("delta: btrfs store: snapshot, rollback, generations, compaction and removal") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    LayerStore store = LayerStore::open(tmp.path / "store", {.image_size = uint64_t{2} << 30});
    DELTA_EXPECT(store.backend() == Backend::btrfs);
    // The bundle rootfs lives on another filesystem, as it usually does.
    tmpfs_at(tmp.path / "bundle");
    storage_scenario(store, store.root() / "scratch", tmp.path / "bundle/rootfs", "btrfs");
    // Snapshot timing once the writable layer holds real data: 2,000 files written.
    store.create_writable(store.root() / "big");
    for (int i = 0; i < 2000; ++i) put(store.root() / fmt::format("big/upper/f{}", i), std::string(512, 'x'));
    store.flush(store.root() / "big");
    auto t0 = std::chrono::steady_clock::now();
    store.snapshot(store.root() / "big", store.root() / "big-snap");
    measure("btrfs: snapshot after 2,000 files (flushed first): {:.2f} ms", ms_since(t0));
    for (int i = 0; i < 10; ++i) put(store.root() / fmt::format("big/upper/g{}", i), std::string(100 << 10, 'y'));
    t0 = std::chrono::steady_clock::now();
    store.snapshot(store.root() / "big", store.root() / "big-snap2");
    measure("btrfs: snapshot after 10x100 KiB unflushed: {:.2f} ms", ms_since(t0));
    // Compaction costs the changes above the bottom layer, not the bottom layer's 2,000 files.
    store.create_writable(store.root() / "small");
    for (int i = 0; i < 10; ++i) put(store.root() / fmt::format("small/upper/f{}", i * 200), "changed");
    store.snapshot(store.root() / "small", store.root() / "small-snap");
    t0 = std::chrono::steady_clock::now();
    compact_layers(store, {store.root() / "small-snap/upper", store.root() / "big-snap/upper"},
                   store.root() / "big-compacted");
    measure("btrfs: compaction of a 10-file layer over a 2,000-file layer: {:.2f} ms", ms_since(t0));
    DELTA_EXPECT(slurp(store.root() / "big-compacted/upper/f200") == "changed");
    DELTA_EXPECT(slurp(store.root() / "big-compacted/upper/f201") == std::string(512, 'x'));
    unmount(store.root());
  });
  check_isolated(result);
  CHECK(loop_released(tmp.path / "store.img"));
}

TEST_CASE("delta: btrfs store: more than 120 layers through lowerdir+, up to overlayfs' 500") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    LayerStore store = LayerStore::open(tmp.path / "store", {.image_size = uint64_t{1} << 30});
    tmpfs_at(tmp.path / "bundle");
    auto rootfs = tmp.path / "bundle/rootfs";
    make_bundle_rootfs(rootfs);
    auto layers = store.root() / "layers-with-a-realistic-path-length/container-0123456789abcdef";
    // 150 snapshot layers, each adding a file and overwriting "top".
    std::vector<fs::path> chain{rootfs};
    for (int i = 0; i < 150; ++i) {
      auto writable = layers / fmt::format("w{:03}", i);
      store.create_writable(writable);
      put(writable / fmt::format("upper/file{:03}", i), std::to_string(i));
      put(writable / "upper/top", std::to_string(i));
      auto snap = layers / fmt::format("snapshot-{:03}", i);
      store.snapshot(writable, snap);
      store.remove(writable);
      chain.insert(chain.begin(), snap / "upper");
    }
    // What mount(2) would need: one comma-separated string far over a page.
    std::string legacy = "lowerdir=";
    for (size_t i = 0; i < chain.size(); ++i) legacy += (i ? ":" : "") + chain[i].string();
    DELTA_EXPECT(legacy.size() > 4096);
    auto mnt = tmp.path / "mnt";
    fs::create_directories(mnt);
    int legacy_rc = ::mount("overlay", mnt.c_str(), "overlay", 0, legacy.c_str());
    int legacy_errno = errno;
    DELTA_EXPECT(legacy_rc < 0);
    if (legacy_rc == 0) unmount(mnt);
    measure("legacy mount(2) with 151 lowers ({} byte option string): {}", legacy.size(),
            legacy_rc < 0 ? std::strerror(legacy_errno) : "succeeded");

    store.create_writable(store.root() / "upper-151");
    mount_overlay_at(OverlayLayers{chain, store.root() / "upper-151/upper", store.root() / "upper-151/work"}, mnt);
    DELTA_EXPECT(slurp(mnt / "top") == "149");
    for (int i = 0; i < 150; ++i) DELTA_EXPECT(slurp(mnt / fmt::format("file{:03}", i)) == std::to_string(i));
    DELTA_EXPECT(slurp(mnt / "etc/hostname") == "bundle\n");
    unmount(mnt);

    // Mount time by stack depth (detached mount + move_mount), snapshot layers.
    for (size_t depth : {size_t{1}, size_t{10}, size_t{100}, size_t{150}}) {
      std::vector<fs::path> lowers(chain.end() - static_cast<long>(depth) - 1, chain.end());
      double best = 1e9;
      for (int rep = 0; rep < 5; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        mount_overlay_at(OverlayLayers{lowers, store.root() / "upper-151/upper", store.root() / "upper-151/work"}, mnt);
        best = std::min(best, ms_since(t0));
        unmount(mnt);
      }
      measure("overlay mount with {} delta layers + rootfs: {:.2f} ms (best of 5)", depth, best);
    }

    // 500 lowers (plain dirs) mount; 501 is refused before asking the kernel, naming the limit.
    std::vector<fs::path> many;
    for (int i = 0; i < 499; ++i) {
      auto dir = store.root() / fmt::format("plain/{:03}", i);
      fs::create_directories(dir);
      many.push_back(dir);
    }
    many.push_back(rootfs);
    auto t0 = std::chrono::steady_clock::now();
    mount_overlay_at(OverlayLayers{many, store.root() / "upper-151/upper", store.root() / "upper-151/work"}, mnt);
    measure("overlay mount with 500 lowers: {:.2f} ms", ms_since(t0));
    DELTA_EXPECT(slurp(mnt / "etc/hostname") == "bundle\n");
    unmount(mnt);
    many.insert(many.begin(), store.root() / "plain/000");
    try {
      make_overlay(OverlayLayers{many, store.root() / "upper-151/upper", store.root() / "upper-151/work"});
      DELTA_EXPECT(false && "501 lowers accepted");
    } catch (const Error& e) {
      DELTA_EXPECT(std::string(e.what()).find("limit of 500") != std::string::npos);
    }

    // Flattening the 150 layers gives the same view as stacking them.
    auto stacked = [&](const std::vector<fs::path>& lowers) {
      mount_overlay_at(OverlayLayers{lowers, store.root() / "upper-151/upper", store.root() / "upper-151/work"}, mnt);
      TreeView view = describe(mnt);
      unmount(mnt);
      return view;
    };
    TreeView want = stacked(chain);
    std::vector<fs::path> deltas(chain.begin(), chain.end() - 1);
    auto t_compact = std::chrono::steady_clock::now();
    compact_layers(store, deltas, layers / "compacted");
    measure("compaction of 150 layers (2 files each): {:.1f} ms", ms_since(t_compact));
    same_view(stacked({layers / "compacted/upper", rootfs}), want, "150 layers compacted");

    // upper and work in different subvolumes would mount but fail every whiteout with EXDEV.
    store.create_writable(store.root() / "other-subvolume");
    try {
      make_overlay(OverlayLayers{{rootfs}, store.root() / "upper-151/upper", store.root() / "other-subvolume/work"});
      DELTA_EXPECT(false && "upper and work in different subvolumes accepted");
    } catch (const Error& e) {
      DELTA_EXPECT_MSG(std::string(e.what()).find("different filesystems or btrfs subvolumes") != std::string::npos,
                       "{}", e.what());
    }

    // A missing layer is named in the error.
    try {
      make_overlay(OverlayLayers{{store.root() / "no-such-snapshot/upper", rootfs}, store.root() / "upper-151/upper",
                                 store.root() / "upper-151/work"});
      DELTA_EXPECT(false && "missing layer accepted");
    } catch (const Error& e) {
      std::string what = e.what();
      DELTA_EXPECT_MSG(what.find("lower layer 1 of 2") != std::string::npos, "{}", what);
      DELTA_EXPECT_MSG(what.find("no-such-snapshot") != std::string::npos, "{}", what);
    }
    unmount(store.root());
  });
  check_isolated(result);
}

namespace {

void write_bytes(const fs::path& path, const std::vector<std::byte>& data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throw_errno("create " + path.string());
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) throw_errno("write " + path.string());
    done += static_cast<size_t>(n);
  }
}

bool file_equals(const fs::path& path, const std::vector<std::byte>& data) {
  std::string got = slurp(path);
  return got.size() == data.size() && std::memcmp(got.data(), data.data(), data.size()) == 0;
}

}  // namespace

TEST_CASE("delta: btrfs store: dedup_against_parent shares all but the changed blocks") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    LayerStore store = LayerStore::open(tmp.path / "store", {.image_size = uint64_t{4} << 30});
    const size_t B = kDedupBlock;
    const size_t size = size_t{64} << 20;
    auto root = store.root();

    // The parent snapshot's images: a 64 MiB pages file, a small file. Read-only, as snapshots are.
    store.create_writable(root / "snap1");
    fs::create_directories(root / "snap1/criu");
    auto pages = random_bytes(size, 42);
    write_bytes(root / "snap1/criu/pages-1.img", pages);
    put(root / "snap1/criu/inventory.img", "inv");
    btrfs::set_readonly(root / "snap1", true);

    // The next dump: 5 blocks changed, a second pages file holding parent pages, a new file.
    store.create_writable(root / "snap2");
    fs::create_directories(root / "snap2/criu");
    auto changed = pages;
    for (size_t block : {size_t{30}, size_t{1000}, size_t{5000}, size_t{9000}, size / B - 1}) {
      changed[block * B + 7] ^= std::byte{0x5a};
    }
    std::vector<std::byte> moved(pages.begin() + (10 << 20), pages.begin() + (14 << 20));
    auto tail = random_bytes(100, 5);
    moved.insert(moved.end(), tail.begin(), tail.end());
    auto core = random_bytes(10000, 6);
    write_bytes(root / "snap2/criu/pages-1.img", changed);
    write_bytes(root / "snap2/criu/pages-2.img", moved);
    write_bytes(root / "snap2/criu/core-1.img", core);
    put(root / "snap2/criu/inventory.img", "inv2");
    uint64_t before = store.exclusive_bytes(root / "snap2/criu");
    DELTA_EXPECT_MSG(before >= size + (4 << 20), "exclusive before dedup {}", before);

    auto t0 = std::chrono::steady_clock::now();
    uint64_t shared = dedup_against_parent(root / "snap2/criu", root / "snap1/criu");
    double ms = ms_since(t0);
    measure("dedup 64 MiB + 4 MiB against a 64 MiB parent (synced by the FIEMAP above): {:.1f} ms, {:.0f} MiB/s",
            ms, 68.0 / (ms / 1000));
    DELTA_EXPECT_MSG(shared == size - 5 * B + (4 << 20), "shared {}", shared);
    DELTA_EXPECT(file_equals(root / "snap2/criu/pages-1.img", changed));
    DELTA_EXPECT(file_equals(root / "snap2/criu/pages-2.img", moved));
    DELTA_EXPECT(file_equals(root / "snap2/criu/core-1.img", core));
    DELTA_EXPECT(file_equals(root / "snap1/criu/pages-1.img", pages));
    struct stat st;
    check(::stat((root / "snap2/criu/pages-1.img").c_str(), &st), "stat");
    DELTA_EXPECT((st.st_mode & 07777) == 0600);
    uint64_t after = store.exclusive_bytes(root / "snap2/criu");
    measure("exclusive bytes of the new images: {} before dedup, {} after", before, after);
    // 5 changed blocks + pages-2's tail block + core-1 (3 blocks) + inline inventory.
    DELTA_EXPECT_MSG(after <= 5 * B + B + 3 * B + 3 * B, "exclusive after dedup {}", after);
    // Nothing left to share the second time.
    DELTA_EXPECT(dedup_against_parent(root / "snap2/criu", root / "snap1/criu") == size - 5 * B + (4 << 20));

    // Scattered changes: every 8th block changed (runs of 7 blocks, 512 clones); with every
    // other block changed the single-block runs are below kMinCloneRunBlocks and nothing is cloned.
    {
      auto base = random_bytes(size_t{16} << 20, 11);
      store.create_writable(root / "frag-p");
      write_bytes(root / "frag-p/upper/pages-1.img", base);
      store.flush(root / "frag-p");
      auto alternating = base;
      for (size_t block = 0; block < base.size() / B; block += 8) base[block * B] ^= std::byte{1};
      for (size_t block = 0; block < base.size() / B; block += 2) alternating[block * B] ^= std::byte{1};
      store.create_writable(root / "frag-n");
      write_bytes(root / "frag-n/upper/pages-1.img", base);
      write_bytes(root / "frag-n/upper/pages-2.img", alternating);
      auto start = std::chrono::steady_clock::now();
      uint64_t frag_shared = dedup_against_parent(root / "frag-n/upper", root / "frag-p/upper");
      measure("dedup 2x16 MiB, every 8th / every other block changed (512 clones / none): {:.1f} ms",
              ms_since(start));
      DELTA_EXPECT_MSG(frag_shared == (size_t{14} << 20), "{}", frag_shared);
      DELTA_EXPECT(file_equals(root / "frag-n/upper/pages-1.img", base));
      DELTA_EXPECT(file_equals(root / "frag-n/upper/pages-2.img", alternating));
    }

    // Speed on 256 MiB straight after the dump was written (dirty in the page cache), the
    // way it runs after CRIU: the rebuilt file never writes back the original's pages.
    auto big = random_bytes(size_t{256} << 20, 9);
    store.create_writable(root / "p");
    write_bytes(root / "p/upper/pages-1.img", big);
    store.flush(root / "p");
    big[12345 * B] ^= std::byte{1};
    store.create_writable(root / "n");
    write_bytes(root / "n/upper/pages-1.img", big);
    t0 = std::chrono::steady_clock::now();
    shared = dedup_against_parent(root / "n/upper", root / "p/upper");
    ms = ms_since(t0);
    measure("dedup 256 MiB (freshly written, not synced): {:.1f} ms, {:.0f} MiB/s", ms, 256.0 / (ms / 1000));
    DELTA_EXPECT(shared == (size_t{256} << 20) - B);
    DELTA_EXPECT(file_equals(root / "n/upper/pages-1.img", big));
    t0 = std::chrono::steady_clock::now();
    store.flush(root / "n");
    measure("syncfs after the 256 MiB dedup: {:.1f} ms", ms_since(t0));
    unmount(store.root());
  });
  check_isolated(result);
}

TEST_CASE("delta: btrfs store: exclusive_bytes sees what a snapshot shares") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    LayerStore store = LayerStore::open(tmp.path / "store", {.image_size = uint64_t{1} << 30});
    auto root = store.root();
    const uint64_t MiB = 1 << 20;
    store.create_writable(root / "w");
    write_bytes(root / "w/upper/a", random_bytes(MiB, 1));
    uint64_t alone = store.exclusive_bytes(root / "w");
    DELTA_EXPECT_MSG(alone >= MiB && alone < MiB + 64 * 1024, "{}", alone);
    store.snapshot(root / "w", root / "s");
    DELTA_EXPECT_MSG(store.exclusive_bytes(root / "w") == 0, "{}", store.exclusive_bytes(root / "w"));
    DELTA_EXPECT(store.exclusive_bytes(root / "s") == 0);
    write_bytes(root / "w/upper/b", random_bytes(2 * MiB, 2));
    uint64_t grown = store.exclusive_bytes(root / "w");
    DELTA_EXPECT_MSG(grown >= 2 * MiB && grown < 2 * MiB + 64 * 1024, "{}", grown);
    // A hardlinked file counts once.
    fs::create_hard_link(root / "w/upper/b", root / "w/upper/b2");
    DELTA_EXPECT(store.exclusive_bytes(root / "w") == grown);
    // What is gone (swapped away, removed while `snapshots` counts) takes no room.
    DELTA_EXPECT(store.exclusive_bytes(root / "gone") == 0);
    unmount(store.root());
  });
  check_isolated(result);
}

TEST_CASE("delta: btrfs store: remove handles read-only snapshots, nested subvolumes and missing paths") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    LayerStore store = LayerStore::open(tmp.path / "store", {.image_size = uint64_t{1} << 30});
    auto root = store.root();
    store.create_writable(root / "c/w");
    put(root / "c/w/upper/f", "f");
    store.snapshot(root / "c/w", root / "c/s1");
    store.snapshot(root / "c/s1", root / "c/s2");  // a snapshot of a snapshot
    DELTA_EXPECT(slurp(root / "c/s2/upper/f") == "f");
    DELTA_EXPECT(btrfs::is_readonly(root / "c/s2"));
    // A nested subvolume inside a writable layer (a container running btrfs tools on its root).
    btrfs::create_subvolume(root / "c/w/upper/nested");
    put(root / "c/w/upper/nested/x", "x");
    store.remove(root / "c/s1");
    DELTA_EXPECT(!fs::exists(root / "c/s1"));
    store.remove(root / "c/w");
    DELTA_EXPECT(!fs::exists(root / "c/w"));
    // A dir of layers.
    store.remove(root / "c");
    DELTA_EXPECT(!fs::exists(root / "c"));
    store.remove(root / "c");
    store.remove(root / "never-existed");
    try {
      store.snapshot(root / "missing", root / "dest");
      DELTA_EXPECT(false && "snapshot of a missing layer");
    } catch (const Error& e) {
      DELTA_EXPECT(std::string(e.what()).find("missing") != std::string::npos);
    }
    unmount(store.root());
  });
  check_isolated(result);
}

// =============================================================================================
// Live: the fallback backends give the same views
// =============================================================================================

TEST_CASE("delta: copy store on tmpfs gives the same views") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  DeltaTempDir tmp;
  auto result = run_in_private_mount_ns([&] {
    tmpfs_at(tmp.path / "t");
    LayerStore store = LayerStore::open(tmp.path / "t/store", {.create_loop_image = false});
    DELTA_EXPECT(store.backend() == Backend::copy);
    storage_scenario(store, store.root() / "scratch", tmp.path / "t/rootfs", "copy/tmpfs");
    // Dedup needs shared extents: nothing happens, nothing breaks.
    fs::create_directories(tmp.path / "t/p");
    fs::create_directories(tmp.path / "t/n");
    auto data = random_bytes(1 << 20, 3);
    write_bytes(tmp.path / "t/p/pages-1.img", data);
    write_bytes(tmp.path / "t/n/pages-1.img", data);
    DELTA_EXPECT(dedup_against_parent(tmp.path / "t/n", tmp.path / "t/p") == 0);
    DELTA_EXPECT(file_equals(tmp.path / "t/n/pages-1.img", data));
  });
  check_isolated(result);
}

TEST_CASE("delta: reflink store on XFS gives the same views and dedups") {
  if (!running_as_root()) {
    MESSAGE("skipped: needs root");
    return;
  }
  if (::access("/usr/sbin/mkfs.xfs", X_OK) != 0 && ::access("/sbin/mkfs.xfs", X_OK) != 0) {
    MESSAGE("skipped: no mkfs.xfs");
    return;
  }
  DeltaTempDir tmp;
  auto image = tmp.path / "xfs.img";
  {
    UniqueFd fd(::open(image.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    REQUIRE(fd.valid());
    REQUIRE(::ftruncate(fd.get(), off_t{1} << 30) == 0);
  }
  REQUIRE(std::system(fmt::format("mkfs.xfs -q -m reflink=1 {} >/dev/null 2>&1", image.string()).c_str()) == 0);
  auto result = run_in_private_mount_ns([&] {
    auto dir = tmp.path / "xfs";
    fs::create_directories(dir);
    {
      LoopDevice loop = LoopDevice::attach(image);
      check(::mount(loop.path().c_str(), dir.c_str(), "xfs", 0, nullptr), "mount xfs");
    }
    LayerStore store = LayerStore::open(dir / "store", {.create_loop_image = false});
    DELTA_EXPECT(store.backend() == Backend::reflink);
    tmpfs_at(tmp.path / "bundle");
    storage_scenario(store, store.root() / "scratch", tmp.path / "bundle/rootfs", "reflink/xfs");
    fs::create_directories(dir / "p");
    fs::create_directories(dir / "n");
    auto data = random_bytes(8 << 20, 3);
    write_bytes(dir / "p/pages-1.img", data);
    data[4096 * 7] ^= std::byte{1};
    write_bytes(dir / "n/pages-1.img", data);
    DELTA_EXPECT(dedup_against_parent(dir / "n", dir / "p") == (8 << 20) - 4096);
    DELTA_EXPECT(file_equals(dir / "n/pages-1.img", data));
    DELTA_EXPECT_MSG(store.exclusive_bytes(dir / "n") <= 64 * 1024, "{}", store.exclusive_bytes(dir / "n"));
    unmount(dir);
  });
  check_isolated(result);
  CHECK(loop_released(image));
}
