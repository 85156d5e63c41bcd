// Pure parts of the snapshot feature: socket classification, the snapshot tree's records, the
// job journal, template records, generation paths; and the CLI's small parsers.
#include <doctest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "cli/table.hpp"
#include "container/container_state.hpp"
#include "container/generation.hpp"
#include "container/image_cache.hpp"
#include "container/jobs.hpp"
#include "container/snapshot_classify.hpp"
#include "container/snapshot_tree.hpp"
#include "container/templates.hpp"
#include "linux/signals.hpp"
#include "process/anchor.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

using namespace deltabox;

namespace {
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/deltabox-test-snap-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

SnapshotMeta meta(const std::string& id, const std::string& created, const std::string& name = "") {
  SnapshotMeta m;
  m.id = id;
  m.name = name;
  m.created = created;
  m.generation = "0";
  m.layers = {"/x/" + id + "/fs/upper", "/rootfs"};
  return m;
}
}  // namespace

TEST_CASE("snapshot classify: bound inet sockets from /proc/net/tcp text") {
  const std::string tcp =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n"
      "   1: 0100007F:A5B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1\n"
      "   2: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n";
  auto found = bound_inet_sockets(tcp, "tcp");
  REQUIRE(found.size() == 2);
  CHECK(found[0] == std::pair<unsigned long, std::string>{4242, "listening tcp socket on port 8080"});
  CHECK(found[1].first == 4343);
  CHECK(found[1].second.find("connected") == 0);
  const std::string udp =
      "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
      "  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5555 2 0 0\n";
  auto udp_found = bound_inet_sockets(udp, "udp");
  REQUIRE(udp_found.size() == 1);
  CHECK(udp_found[0].second == "bound udp socket on port 53");
}

TEST_CASE("snapshot classify: abstract unix sockets from /proc/net/unix text") {
  const std::string unix_text =
      "Num       RefCount Protocol Flags    Type St Inode Path\n"
      "0000000000000000: 00000002 00000000 00010000 0001 01 7001 @agent-bus\n"
      "0000000000000000: 00000002 00000000 00010000 0001 01 7002 /run/app.sock\n"
      "0000000000000000: 00000003 00000000 00000000 0001 03 7003\n";
  auto found = abstract_unix_sockets(unix_text);
  REQUIRE(found.size() == 1);
  CHECK(found[0] == std::pair<unsigned long, std::string>{7001, "abstract unix socket @agent-bus"});
}

// What a dump leaves in a staging dir: CRIU's images, inventory.img among them.
void stage(const SnapshotTree& tree, const std::string& id) {
  std::filesystem::create_directories(tree.staging(id) / "criu");
  write_file_atomic(tree.staging(id) / "criu" / "inventory.img", "x", 0600, Durability::survive_process_crash);
}

TEST_CASE("snapshot tree: staged snapshots are invisible until published") {
  TempDir tmp;
  SnapshotTree tree(tmp.path);
  auto m1 = meta("s1", "2026-01-01T00:00:01Z", "first");
  stage(tree, "s1");
  CHECK(tree.list().empty());
  CHECK(tree.abandoned().size() == 1);
  tree.publish(m1);
  CHECK(tree.abandoned().empty());
  REQUIRE(tree.list().size() == 1);
  CHECK(tree.find("s1")->name == "first");
  CHECK(tree.find("first")->id == "s1");
  CHECK_FALSE(tree.find("nope"));
  CHECK_FALSE(tree.find("../s1"));
}

TEST_CASE("snapshot tree: order, removal, round trip") {
  TempDir tmp;
  SnapshotTree tree(tmp.path);
  for (auto [id, t] : {std::pair{"s3", "2026-01-01T00:00:03Z"}, {"s1", "2026-01-01T00:00:01Z"}, {"s2", "2026-01-01T00:00:02Z"}}) {
    stage(tree, id);
    tree.publish(meta(id, t));
  }
  std::vector<std::string> ids;
  for (const auto& m : tree.list()) ids.push_back(m.id);
  CHECK(ids == std::vector<std::string>{"s1", "s2", "s3"});
  auto m2 = *tree.find("s2");
  m2.removed = true;
  m2.snapshot_class = SnapshotClass::cold_only;
  m2.reason = "listening tcp socket on port 80";
  tree.update(m2);
  CHECK_FALSE(tree.find("s2"));
  REQUIRE(tree.removed().size() == 1);
  auto back = tree.removed()[0];
  CHECK(back.snapshot_class == SnapshotClass::cold_only);
  CHECK(back.reason == m2.reason);
  CHECK(SnapshotMeta::from_json(m2.to_json()).to_json() == m2.to_json());
  CHECK_THROWS_AS(SnapshotMeta::from_json({{"id", "x"}}), Error);
}

TEST_CASE("snapshot tree: mark_removed alone removes (no record written: a full store)") {
  TempDir tmp;
  SnapshotTree tree(tmp.path);
  stage(tree, "s1");
  tree.publish(meta("s1", "2026-01-01T00:00:01Z", "first"));
  stage(tree, "s2");
  tree.publish(meta("s2", "2026-01-01T00:00:02Z"));
  tree.mark_removed("s1");
  CHECK_FALSE(tree.find("s1"));
  CHECK_FALSE(tree.find("first"));
  REQUIRE(tree.list().size() == 1);
  CHECK(tree.list()[0].id == "s2");
  REQUIRE(tree.removed().size() == 1);
  CHECK(tree.removed()[0].id == "s1");
  tree.mark_removed("s1");  // again: nothing to do
  // a published snapshot whose images never came is not one either
  std::filesystem::create_directories(tree.staging("s3"));
  tree.publish(meta("s3", "2026-01-01T00:00:03Z"));
  CHECK_FALSE(tree.find("s3"));
}

TEST_CASE("jobs: journal order, round trip, torn files dropped") {
  TempDir tmp;
  JobQueue queue(tmp.path);
  queue.enqueue({Job::Type::dump, "s1", "0"});
  queue.enqueue({Job::Type::template_restore, "s1", ""});
  queue.enqueue({Job::Type::discard, "", "3"});
  queue.enqueue({Job::Type::compact, "s9", ""});
  write_file_atomic(tmp.path / "jobs" / "0000-torn.json", "{", 0600, Durability::survive_process_crash);
  auto pending = queue.pending();
  REQUIRE(pending.size() == 4);
  CHECK(pending[0].second.type == Job::Type::dump);
  CHECK(pending[0].second.generation == "0");
  CHECK(pending[1].second.type == Job::Type::template_restore);
  CHECK(pending[2].second.generation == "3");
  CHECK(pending[3].second.type == Job::Type::compact);
  queue.done(pending[0].first);
  CHECK(queue.pending().size() == 3);
  queue.enqueue({Job::Type::dump, "s7", "2"});
  queue.done_dump("s8");
  CHECK(queue.pending().size() == 4);
  queue.done_dump("s7");
  CHECK(queue.pending().size() == 3);
  CHECK_THROWS_AS(Job::from_json({{"type", "explode"}}), Error);
}

TEST_CASE("templates: records round trip; a dead process is not a template") {
  TempDir tmp;
  TemplatePool pool(tmp.path);
  CHECK_FALSE(pool.find("s1"));
  pool.save({"s1", "4", 2, ::getpid(), process_start_time(::getpid()), 1024, {"/l", "/rootfs"}});
  auto t = pool.find("s1");
  REQUIRE(t);
  CHECK(t->alive());
  CHECK(t->layers == std::vector<std::string>{"/l", "/rootfs"});
  pool.save({"s2", "5", 3, 0x7ffffff0, 1, 0, {}});
  CHECK_FALSE(pool.find("s2")->alive());
  CHECK(pool.all().size() == 2);
  pool.forget("s1");
  CHECK_FALSE(pool.find("s1"));
}

TEST_CASE("generations: paths and cgroup leaves are derived from the id") {
  auto p = generation_paths("/store/containers/c", "7");
  CHECK(p.layer == "/store/containers/c/gens/7");
  CHECK(p.upper == "/store/containers/c/gens/7/upper");
  CHECK(p.work == "/store/containers/c/gens/7/work");
  CHECK(p.merged == "/store/containers/c/mnt/7");
  CHECK(p.cgroup_leaf == "gen-7");
  CHECK(container_store_dir("/store", "c") == "/store/containers/c");
}

TEST_CASE("anchor: the activate command's wire form") {
  CHECK(format_activate({12, 7, "/sys/fs/cgroup/x/cgroup.procs"}) == "activate 12 7 /sys/fs/cgroup/x/cgroup.procs");
  CHECK(format_activate({0, 5, ""}) == "activate 0 5 -");
}

TEST_CASE("signals: runc's names and numbers") {
  CHECK(parse_signal("9") == 9);
  CHECK(parse_signal("KILL") == 9);
  CHECK(parse_signal("SIGKILL") == 9);
  CHECK(parse_signal("usr1") == SIGUSR1);
  CHECK(parse_signal("Term") == SIGTERM);
  CHECK_THROWS_WITH_AS(parse_signal("FOO"), "unknown signal \"FOO\"", Error);
}

TEST_CASE("table: Go tabwriter layout of `list`") {
  cli::TabWriter t;
  t.row({"ID", "PID", "STATUS"});
  t.row({"a-much-longer-id", "1", "running"});
  auto text = t.render();
  // Column width: the widest cell plus a padding of 3, at least 12; the last cell unpadded.
  CHECK(text ==
        "ID" + std::string(17, ' ') + "PID" + std::string(9, ' ') + "STATUS\n" +
        "a-much-longer-id" + std::string(3, ' ') + "1" + std::string(11, ' ') + "running\n");
}

TEST_CASE("image cache: what fits, and a spill copies then swaps in place of the symlink") {
  CHECK(ImageCache::fits(100, 0, 1000, 1000));
  CHECK_FALSE(ImageCache::fits(100, 950, 1000, 1 << 20));  // over the container's cap
  CHECK_FALSE(ImageCache::fits(600, 0, 1 << 20, 1000));    // more than half of what is free
  CHECK_FALSE(ImageCache::fits(1, 0, 0, 1 << 20));         // cap 0: off
  CHECK(ImageCache::cap_from({}) == kDefaultImageCacheBytes);
  CHECK(ImageCache::cap_from({{"io.deltabox.image-cache", "0"}}) == 0);
  CHECK(ImageCache::cap_from({{"io.deltabox.image-cache", "junk"}}) == kDefaultImageCacheBytes);

  TempDir tmp;
  const auto cache = tmp.path / "cache" / "s2";
  const auto snap = tmp.path / "store" / "s2";
  std::filesystem::create_directories(cache);
  std::filesystem::create_directories(snap);
  write_file_atomic(cache / "inventory.img", "inv", 0600, Durability::survive_process_crash);
  write_file_atomic(cache / "pages-1.img", std::string(100000, 'p'), 0600, Durability::survive_process_crash);
  std::filesystem::create_directory_symlink(cache, snap / "criu");
  CHECK(directory_bytes(snap / "criu") == 100003);

  copy_images_to_store(snap / "criu", snap / "criu.spill", {});
  CHECK(std::filesystem::exists(snap / "criu.spill" / ".complete"));
  std::filesystem::remove(cache / "pages-1.img");  // a complete copy is not redone
  copy_images_to_store(snap / "criu", snap / "criu.spill", {});
  CHECK(std::filesystem::file_size(snap / "criu.spill" / "pages-1.img") == 100000);

  swap_in_spilled_images(snap / "criu", snap / "criu.spill");
  CHECK_FALSE(std::filesystem::is_symlink(snap / "criu"));
  CHECK_FALSE(std::filesystem::exists(snap / "criu.spill"));
  CHECK_FALSE(std::filesystem::exists(snap / "criu" / ".complete"));
  CHECK(read_file(snap / "criu" / "inventory.img") == "inv");
  CHECK(std::filesystem::exists(cache / "inventory.img"));  // the cache goes separately
}

TEST_CASE("image cache: resident_bytes of this process is its RSS") {
  CHECK(resident_bytes({::getpid()}) > 0);
  CHECK(resident_bytes({}) == 0);
}
