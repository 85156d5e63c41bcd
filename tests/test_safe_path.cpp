// safe_path: lexical cleaning, and resolution inside a root that is full of escape attempts.
// rootfs: the whole mount sequence, live, in throwaway namespaces (see the end of this file).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <doctest.h>

#include "linux/safe_path.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace fs = std::filesystem;
using deltabox::clean_path;
using deltabox::UniqueFd;

TEST_CASE("safe_path: clean_path follows Go's filepath.Clean") {
  const std::pair<const char*, const char*> cases[] = {
      // Already clean
      {"abc", "abc"},
      {"abc/def", "abc/def"},
      {"a/b/c", "a/b/c"},
      {".", "."},
      {"..", ".."},
      {"../..", "../.."},
      {"../../abc", "../../abc"},
      {"/abc", "/abc"},
      {"/", "/"},
      // Empty is current dir
      {"", "."},
      // Remove trailing slash
      {"abc/", "abc"},
      {"abc/def/", "abc/def"},
      {"a/b/c/", "a/b/c"},
      {"./", "."},
      {"../", ".."},
      {"../../", "../.."},
      {"/abc/", "/abc"},
      // Remove doubled slash
      {"abc//def//ghi", "abc/def/ghi"},
      {"//abc", "/abc"},
      {"///abc", "/abc"},
      {"//abc//", "/abc"},
      {"abc//", "abc"},
      // Remove . elements
      {"abc/./def", "abc/def"},
      {"/./abc/def", "/abc/def"},
      {"abc/.", "abc"},
      // Remove .. elements
      {"abc/def/ghi/../jkl", "abc/def/jkl"},
      {"abc/def/../ghi/../jkl", "abc/jkl"},
      {"abc/def/..", "abc"},
      {"abc/def/../..", "."},
      {"/abc/def/../..", "/"},
      {"abc/def/../../..", ".."},
      {"/abc/def/../../..", "/"},
      {"abc/def/../../../ghi/jkl/../../../mno", "../../mno"},
      {"/../abc", "/abc"},
      {"/../../..", "/"},
      // Combinations
      {"abc/./../def", "def"},
      {"abc//./../def", "def"},
      {"abc/../../././../def", "../../def"},
  };
  for (const auto& [in, out] : cases) {
    CAPTURE(in);
    CHECK(clean_path(in) == out);
  }
}

TEST_CASE("safe_path: proc_fd_path names the magic link") {
  CHECK(deltabox::proc_fd_path(7) == "/proc/self/fd/7");
}

namespace {

// A root directory full of traps, next to an "outside" directory that must never be touched.
class TrapRoot {
 public:
  TrapRoot() {
    char tmpl[] = "/tmp/deltabox-safe-path-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    base_ = tmpl;
    root_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directories(root_ / "etc");
    fs::create_directories(outside_);
    write(root_ / "etc" / "inside", "inside");
    write(outside_ / "marker", "outside");
    write(root_ / "file", "plain file");
    link("/", "abs");
    link("/etc", "abs_etc");
    link("../../..", "up");
    link("../../../../../../../etc", "uphost");
    link(outside_.string(), "host_outside");          // absolute host path
    link("../outside", "rel_outside");                 // relative path out of the root
    link("loop2", "loop1");
    link("loop1", "loop2");
    link("self", "self");
    link("/newdir/sub", "dangling");
    link("/run/systemd/resolve/stub-resolv.conf", "resolv.conf");
    link("/proc/self/root", "magic");                  // a magic link once /proc exists
    link("file", "file_link");
    root_fd_.reset(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(root_fd_.valid());
  }
  ~TrapRoot() {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }
  TrapRoot(const TrapRoot&) = delete;
  TrapRoot& operator=(const TrapRoot&) = delete;

  int fd() const { return root_fd_.get(); }
  const fs::path& root() const { return root_; }
  const fs::path& outside() const { return outside_; }

  // The kernel's own idea of where fd points must be inside the root.
  bool inside(int fd) const {
    std::string p = deltabox::fd_path(fd);
    return p == root_.string() || p.rfind(root_.string() + "/", 0) == 0;
  }
  std::string relative(int fd) const { return deltabox::fd_path(fd).substr(root_.string().size()); }

  static void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

 private:
  void link(const std::string& target, const std::string& name) { fs::create_symlink(target, root_ / name); }

  fs::path base_, root_, outside_;
  UniqueFd root_fd_;
};

int error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const deltabox::Error& e) {
    return e.code();
  }
  return 0;
}

bool same_file(int fd, const fs::path& p) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(p.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

TEST_CASE("safe_path: open_in_root follows symlinks only within the root") {
  TrapRoot t;
  using deltabox::open_in_root;

  UniqueFd via_abs = open_in_root(t.fd(), "/abs/etc/inside", O_RDONLY);
  CHECK(same_file(via_abs.get(), t.root() / "etc/inside"));

  UniqueFd abs_etc = open_in_root(t.fd(), "abs_etc", O_PATH);
  CHECK(same_file(abs_etc.get(), t.root() / "etc"));

  UniqueFd up = open_in_root(t.fd(), "up", O_PATH);
  CHECK(same_file(up.get(), t.root()));

  UniqueFd uphost = open_in_root(t.fd(), "/uphost/inside", O_RDONLY);
  CHECK(same_file(uphost.get(), t.root() / "etc/inside"));

  UniqueFd dotdot = open_in_root(t.fd(), "../../../../etc/inside", O_RDONLY);
  CHECK(same_file(dotdot.get(), t.root() / "etc/inside"));

  for (UniqueFd* fd : {&via_abs, &abs_etc, &up, &uphost, &dotdot}) CHECK(t.inside(fd->get()));

  // Ways out of the root lead to names that do not exist inside it.
  CHECK(error_of([&] { open_in_root(t.fd(), "host_outside/marker", O_RDONLY); }) == ENOENT);
  CHECK(error_of([&] { open_in_root(t.fd(), "rel_outside/marker", O_RDONLY); }) == ENOENT);
  CHECK(error_of([&] { open_in_root(t.fd(), "../outside/marker", O_RDONLY); }) == ENOENT);
  CHECK(error_of([&] { open_in_root(t.fd(), "loop1", O_RDONLY); }) == ELOOP);
  CHECK(error_of([&] { open_in_root(t.fd(), "self", O_RDONLY); }) == ELOOP);
  CHECK(error_of([&] { open_in_root(t.fd(), "magic", O_RDONLY); }) == ENOENT);

  CHECK_FALSE(deltabox::open_in_root_if_exists(t.fd(), "/host_outside/marker", O_PATH).has_value());
  CHECK(deltabox::open_in_root_if_exists(t.fd(), "/etc/inside", O_PATH).has_value());
  // Errors other than ENOENT are still errors.
  CHECK(error_of([&] { (void)deltabox::open_in_root_if_exists(t.fd(), "loop1", O_PATH); }) == ELOOP);
  CHECK(error_of([&] { (void)deltabox::open_in_root_if_exists(t.fd(), "file/x", O_PATH); }) == ENOTDIR);
}

TEST_CASE("safe_path: open_in_root refuses magic links") {
  // /proc/self/fd/N inside a root that is "/" would be a jump anywhere: refused.
  UniqueFd slash(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd some(::open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(some.valid());
  CHECK(error_of([&] { deltabox::open_in_root(slash.get(), deltabox::proc_fd_path(some.get()), O_PATH); }) == ELOOP);
  // The O_PATH | O_NOFOLLOW form returns the link itself: usable to mask it.
  UniqueFd link = deltabox::open_in_root(slash.get(), "/proc/self/exe", O_PATH | O_NOFOLLOW);
  struct stat st {};
  REQUIRE(::fstat(link.get(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
}

TEST_CASE("safe_path: mkdir_all_in_root creates inside the root, whatever the symlinks say") {
  TrapRoot t;
  using deltabox::mkdir_all_in_root;

  UniqueFd a = mkdir_all_in_root(t.fd(), "/abs_etc/newdir/x", 0755);
  CHECK(t.relative(a.get()) == "/etc/newdir/x");
  CHECK(fs::is_directory(t.root() / "etc/newdir/x"));

  UniqueFd b = mkdir_all_in_root(t.fd(), "host_outside/sub", 0755);
  CHECK(t.relative(b.get()) == t.outside().string() + "/sub");
  CHECK_FALSE(fs::exists(t.outside() / "sub"));

  UniqueFd c = mkdir_all_in_root(t.fd(), "rel_outside/sub2", 0755);
  CHECK(t.relative(c.get()) == "/outside/sub2");
  CHECK_FALSE(fs::exists(t.outside() / "sub2"));

  UniqueFd d = mkdir_all_in_root(t.fd(), "uphost/fromup", 0755);
  CHECK(t.relative(d.get()) == "/etc/fromup");

  // A dangling symlink is followed (inside the root) and its target created.
  UniqueFd e = mkdir_all_in_root(t.fd(), "dangling/more", 0755);
  CHECK(t.relative(e.get()) == "/newdir/sub/more");

  // ".." is resolved against what was actually walked, and cannot climb out.
  UniqueFd f = mkdir_all_in_root(t.fd(), "a/b/../c", 0755);
  CHECK(t.relative(f.get()) == "/a/c");
  CHECK(fs::is_directory(t.root() / "a/b"));
  UniqueFd g = mkdir_all_in_root(t.fd(), "../../../../../g", 0755);
  CHECK(t.relative(g.get()) == "/g");
  UniqueFd h = mkdir_all_in_root(t.fd(), "abs_etc/../h", 0755);  // .. after a link: its target's parent
  CHECK(t.relative(h.get()) == "/h");

  // The root itself, and existing directories.
  UniqueFd root = mkdir_all_in_root(t.fd(), "/", 0755);
  CHECK(same_file(root.get(), t.root()));
  UniqueFd up = mkdir_all_in_root(t.fd(), "up", 0755);
  CHECK(same_file(up.get(), t.root()));
  UniqueFd again = mkdir_all_in_root(t.fd(), "/etc/newdir/x", 0755);
  CHECK(same_file(again.get(), t.root() / "etc/newdir/x"));

  for (UniqueFd* fd : {&a, &b, &c, &d, &e, &f, &g, &h, &root, &up, &again}) CHECK(t.inside(fd->get()));

  // The result is an O_PATH directory fd.
  CHECK((::fcntl(a.get(), F_GETFL) & O_PATH) == O_PATH);

  CHECK(error_of([&] { mkdir_all_in_root(t.fd(), "file/x", 0755); }) == ENOTDIR);
  CHECK(error_of([&] { mkdir_all_in_root(t.fd(), "file_link/x", 0755); }) == ENOTDIR);
  CHECK(error_of([&] { mkdir_all_in_root(t.fd(), "loop1/x", 0755); }) == ELOOP);
  CHECK(error_of([&] { mkdir_all_in_root(t.fd(), "self", 0755); }) == ELOOP);
  CHECK_FALSE(fs::exists(t.outside() / "x"));
  CHECK_FALSE(fs::exists("/etc/newdir"));
}

TEST_CASE("safe_path: create_file_in_root makes bind targets inside the root") {
  TrapRoot t;
  using deltabox::create_file_in_root;

  UniqueFd a = create_file_in_root(t.fd(), "/abs_etc/hostname", 0644);
  CHECK(t.relative(a.get()) == "/etc/hostname");
  CHECK(fs::is_regular_file(t.root() / "etc/hostname"));

  // resolv.conf -> /run/systemd/resolve/stub-resolv.conf, dangling: created where it points.
  UniqueFd b = create_file_in_root(t.fd(), "/resolv.conf", 0644);
  CHECK(t.relative(b.get()) == "/run/systemd/resolve/stub-resolv.conf");
  CHECK(fs::is_symlink(t.root() / "resolv.conf"));

  UniqueFd c = create_file_in_root(t.fd(), "host_outside/marker", 0644);
  CHECK(t.relative(c.get()) == t.outside().string() + "/marker");
  CHECK(deltabox::read_file(t.outside() / "marker") == "outside");

  // Existing entries are kept, content and all.
  UniqueFd d = create_file_in_root(t.fd(), "file_link", 0644);
  CHECK(same_file(d.get(), t.root() / "file"));
  CHECK(deltabox::read_file(t.root() / "file") == "plain file");

  UniqueFd e = create_file_in_root(t.fd(), "deep/er/file", 0600);
  CHECK(t.relative(e.get()) == "/deep/er/file");

  for (UniqueFd* fd : {&a, &b, &c, &d, &e}) CHECK(t.inside(fd->get()));
  CHECK(error_of([&] { create_file_in_root(t.fd(), "loop1", 0644); }) == ELOOP);
  CHECK(error_of([&] { create_file_in_root(t.fd(), "file/x", 0644); }) == ENOTDIR);
}

TEST_CASE("safe_path: errors name the path") {
  TrapRoot t;
  try {
    deltabox::mkdir_all_in_root(t.fd(), "/file/sub", 0755);
    FAIL("expected an error");
  } catch (const deltabox::Error& e) {
    CHECK(std::string(e.what()).find("/file/sub") != std::string::npos);
  }
}

// ======================================================================================
// rootfs: the live sequence. Everything happens in a forked child that unshares mount, pid, uts
// and ipc namespaces, makes "/" private first, and forks again to be pid 1 there; nothing it does
// can reach the host's mount table. The child reports failures as lines on a pipe.
// ======================================================================================
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <map>
#include <set>
#include <sstream>
#include <vector>

#include <oci/config.hpp>

#include "linux/devices.hpp"
#include "linux/rootfs.hpp"

namespace {

int g_report_fd = -1;

void report(const std::string& line) {
  std::string text = line + "\n";
  (void)!::write(g_report_fd, text.data(), text.size());
}

#define LIVE_EXPECT(cond)                                                        \
  do {                                                                           \
    if (!(cond)) report(fmt::format("line {}: expected {}", __LINE__, #cond));   \
  } while (0)

struct LiveResult {
  int exit_code = -1;
  std::vector<std::string> messages;
};

// Runs body as pid 1 of fresh mount/pid/uts/ipc namespaces. Exit code 0 and no messages = pass.
LiveResult run_isolated(const std::function<void()>& body) {
  int pipefd[2];
  REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(pipefd[0]);
    g_report_fd = pipefd[1];
    if (::unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC) < 0) {
      report(fmt::format("unshare: {}", std::strerror(errno)));
      ::_exit(2);
    }
    // Before anything else: nothing we mount may propagate back to the host.
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
      report(fmt::format("make / private: {}", std::strerror(errno)));
      ::_exit(2);
    }
    pid_t init = ::fork();
    if (init < 0) ::_exit(2);
    if (init == 0) {
      int code = 0;
      try {
        body();
      } catch (const std::exception& e) {
        report(std::string("exception: ") + e.what());
        code = 1;
      }
      ::_exit(code);
    }
    int status = 0;
    while (::waitpid(init, &status, 0) < 0 && errno == EINTR) {
    }
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  ::close(pipefd[1]);
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  LiveResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);) result.messages.push_back(line);
  return result;
}

// Mount points (field 5 of mountinfo) that are, or are under, one of the watched paths.
std::multiset<std::string> watched_mounts(const std::vector<std::string>& watched) {
  std::multiset<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    for (const std::string& w : watched) {
      if (mount_point == w || mount_point.rfind(w + "/", 0) == 0) out.insert(line);
    }
  }
  return out;
}

long fs_magic(const char* path) {
  struct statfs sfs {};
  return ::statfs(path, &sfs) == 0 ? static_cast<long>(sfs.f_type) : -1;
}

bool is_readonly(const char* path) {
  struct statvfs s {};
  return ::statvfs(path, &s) == 0 && (s.f_flag & ST_RDONLY);
}

int open_for_write_errno(const char* path, int flags = O_WRONLY) {
  int fd = ::open(path, flags | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::close(fd);
    return 0;
  }
  return errno;
}

std::string slurp(const char* path) {
  try {
    return deltabox::read_file(path);
  } catch (const std::exception& e) {
    return std::string("<error: ") + e.what() + ">";
  }
}

oci::Mount make_mount(std::string dest, std::string type, std::string source, std::vector<std::string> options) {
  oci::Mount m;
  m.destination = std::move(dest);
  m.type = std::move(type);
  m.source = std::move(source);
  m.options = std::move(options);
  return m;
}

// A scratch bundle: rootfs with busybox, a host directory and file to bind in.
class LiveBundle {
 public:
  LiveBundle() {
    char tmpl[] = "/tmp/deltabox-rootfs-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    base_ = tmpl;
    rootfs_ = base_ / "rootfs";
    for (const char* d : {"bin", "proc", "sys", "dev", "etc", "tmp", "secret"}) fs::create_directories(rootfs_ / d);
    fs::copy_file("/bin/busybox", rootfs_ / "bin/busybox");
    fs::permissions(rootfs_ / "bin/busybox", fs::perms(0755));
    TrapRoot::write(rootfs_ / "etc/os-release", "ID=deltabox-test\n");
    TrapRoot::write(rootfs_ / "secret/key", "do not read");
    fs::create_symlink("/etc", rootfs_ / "evil");
    fs::create_symlink("../../../../..", rootfs_ / "up");
    fs::create_directories(base_ / "hostdata");
    TrapRoot::write(base_ / "hostdata/data.txt", "hello");
    TrapRoot::write(base_ / "hostfile.txt", "a host file");
  }
  ~LiveBundle() {
    // Only delete when no mount is left under the tree: remove_all would walk into a bind mount.
    if (watched_mounts({base_.string()}).empty()) {
      std::error_code ec;
      fs::remove_all(base_, ec);
    }
  }
  LiveBundle(const LiveBundle&) = delete;
  LiveBundle& operator=(const LiveBundle&) = delete;

  const fs::path& base() const { return base_; }
  const fs::path& rootfs() const { return rootfs_; }

 private:
  fs::path base_, rootfs_;
};

}  // namespace

TEST_CASE("rootfs: live sequence in private namespaces") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root");
    return;
  }
  LiveBundle bundle;
  const std::vector<std::string> watched = {bundle.base().string(), "/etc", "/proc", "/sys", "/dev", "/tmp"};
  const auto mounts_before = watched_mounts(watched);

  oci::Config config;
  config.root = oci::Root{bundle.rootfs().string(), true};
  config.process = oci::Process{};
  config.process->terminal = true;
  config.mounts = {
      make_mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      make_mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      make_mount("/dev/pts", "devpts", "devpts",
                 {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      make_mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      make_mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      make_mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      make_mount("/sys/fs/cgroup", "cgroup2", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
      // evil -> /etc: must land on <rootfs>/etc, and copy what was there.
      make_mount("/evil", "tmpfs", "tmpfs", {"tmpcopyup", "nosuid"}),
      // up -> ../../../../..: must land on <rootfs>/uptarget.
      make_mount("/up/uptarget", "tmpfs", "tmpfs", {"rro"}),
      make_mount("/data", "bind", (bundle.base() / "hostdata").string(), {"rbind", "ro", "nosuid"}),
      // A relative source is relative to the bundle; a file source gets a file target.
      make_mount("/etc/hostfile", "none", "hostfile.txt", {"bind", "ro"}),
      make_mount("/ro-tmp", "tmpfs", "tmpfs", {"ro", "size=1m"}),
  };
  oci::Mount idmapped = make_mount("/mapped", "bind", (bundle.base() / "hostdata").string(), {"bind", "idmap"});
  idmapped.uid_mappings = {oci::IdMapping{0, 1000, 1}};
  idmapped.gid_mappings = {oci::IdMapping{0, 2000, 1}};
  config.mounts.push_back(idmapped);
  config.linux = oci::Linux{};
  config.linux->devices = {
      oci::Device{"c", "/dev/zero", 1, 5, 0640u, 0u, 0u},
      oci::Device{"c", "/dev/custom-null", 1, 3, 0600u, std::nullopt, std::nullopt},
  };
  config.linux->masked_paths = {"/proc/timer_list", "/proc/kcore", "/secret", "/does/not/exist"};
  config.linux->readonly_paths = {"/proc/sys", "/proc/does-not-exist"};
  config.linux->sysctl = {{"kernel.domainname", "sysctl-domain"}};

  const std::string rootfs = bundle.rootfs().string();
  const std::string base = bundle.base().string();

  LiveResult result = run_isolated([&] {
    std::string cgroup_target;
    deltabox::MountContext ctx{config, rootfs, base, false,
                               [&](const std::string& target, unsigned long flags) {
                                 cgroup_target = target;
                                 if (::mount("tmpfs", target.c_str(), "tmpfs", flags, "size=4k") < 0) {
                                   deltabox::throw_errno("test cgroup mounter");
                                 }
                               },
                               ""};
    bool hooks_ran = false;
    deltabox::prepare_rootfs(ctx, false, [&] {
      hooks_ran = true;
      // Still in the old root: the host's /etc must not have been covered by the evil mount.
      LIVE_EXPECT(fs_magic("/etc") != TMPFS_MAGIC);
      LIVE_EXPECT(fs_magic((rootfs + "/etc").c_str()) == TMPFS_MAGIC);
    });
    LIVE_EXPECT(hooks_ran);
    LIVE_EXPECT(cgroup_target == rootfs + "/sys/fs/cgroup");
    deltabox::finalize_rootfs(config);
    deltabox::set_hostname("deltabox-live");

    // We are pid 1 and see our own procfs.
    char self[16] = {};
    LIVE_EXPECT(::readlink("/proc/self", self, sizeof self - 1) > 0 && std::string(self) == "1");
    LIVE_EXPECT(fs_magic("/proc") == PROC_SUPER_MAGIC);
    // The root is read-only.
    LIVE_EXPECT(is_readonly("/"));
    LIVE_EXPECT(open_for_write_errno("/newfile", O_WRONLY | O_CREAT) == EROFS);
    // /dev: tmpfs with the devices, the links, a console mount point.
    LIVE_EXPECT(fs_magic("/dev") == TMPFS_MAGIC);
    struct stat st {};
    LIVE_EXPECT(::stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
                minor(st.st_rdev) == 3 && (st.st_mode & 0777) == 0666);
    LIVE_EXPECT(::stat("/dev/zero", &st) == 0 && S_ISCHR(st.st_mode) && (st.st_mode & 0777) == 0640);
    LIVE_EXPECT(::stat("/dev/custom-null", &st) == 0 && S_ISCHR(st.st_mode) && (st.st_mode & 0777) == 0600);
    for (const char* d : {"/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}) {
      LIVE_EXPECT(::stat(d, &st) == 0 && S_ISCHR(st.st_mode));
    }
    LIVE_EXPECT(::lstat("/dev/console", &st) == 0 && S_ISREG(st.st_mode));
    char link[64] = {};
    LIVE_EXPECT(::readlink("/dev/ptmx", link, sizeof link - 1) > 0 && std::string(link) == "pts/ptmx");
    std::fill(std::begin(link), std::end(link), '\0');
    LIVE_EXPECT(::readlink("/dev/fd", link, sizeof link - 1) > 0 && std::string(link) == "/proc/self/fd");
    LIVE_EXPECT(fs_magic("/dev/pts") == DEVPTS_SUPER_MAGIC);
    LIVE_EXPECT(fs_magic("/dev/mqueue") == 0x19800202);  // MQUEUE_MAGIC
    LIVE_EXPECT(fs_magic("/dev/shm") == TMPFS_MAGIC);
    LIVE_EXPECT(::stat("/dev/shm", &st) == 0 && (st.st_mode & 07777) == 01777);
    LIVE_EXPECT(open_for_write_errno("/dev/shm/x", O_WRONLY | O_CREAT) == 0);
    // sysfs read-only, the cgroup mounter's work on top.
    LIVE_EXPECT(fs_magic("/sys") == SYSFS_MAGIC);
    LIVE_EXPECT(is_readonly("/sys"));
    LIVE_EXPECT(fs_magic("/sys/fs/cgroup") == TMPFS_MAGIC);
    LIVE_EXPECT(is_readonly("/sys/fs/cgroup"));
    // The evil -> /etc tmpfs is the container's /etc, with the image's files copied up.
    LIVE_EXPECT(fs_magic("/etc") == TMPFS_MAGIC);
    LIVE_EXPECT(slurp("/etc/os-release") == "ID=deltabox-test\n");
    LIVE_EXPECT(fs_magic("/uptarget") == TMPFS_MAGIC);
    LIVE_EXPECT(is_readonly("/uptarget"));
    // Read-only binds of a host directory and a host file.
    LIVE_EXPECT(slurp("/data/data.txt") == "hello");
    LIVE_EXPECT(is_readonly("/data"));
    LIVE_EXPECT(open_for_write_errno("/data/data.txt") == EROFS);
    LIVE_EXPECT(slurp("/etc/hostfile") == "a host file");
    LIVE_EXPECT(open_for_write_errno("/etc/hostfile") == EROFS);
    // On disk data.txt belongs to 0:0; through the idmapped mount, to 1000:2000.
    LIVE_EXPECT(::stat("/mapped/data.txt", &st) == 0 && st.st_uid == 1000 && st.st_gid == 2000);
    LIVE_EXPECT(slurp("/mapped/data.txt") == "hello");
    // A tmpfs asked to be ro was filled rw, then made ro.
    LIVE_EXPECT(is_readonly("/ro-tmp"));
    // Masked: a file reads empty, a directory is an empty read-only tmpfs.
    LIVE_EXPECT(slurp("/proc/timer_list").empty());
    LIVE_EXPECT(fs_magic("/secret") == TMPFS_MAGIC);
    LIVE_EXPECT(::access("/secret/key", F_OK) < 0 && errno == ENOENT);
    LIVE_EXPECT(open_for_write_errno("/secret/new", O_WRONLY | O_CREAT) == EROFS);
    // Read-only /proc/sys, after the sysctl went in.
    LIVE_EXPECT(open_for_write_errno("/proc/sys/kernel/hostname") == EROFS);
    char name[64] = {};
    LIVE_EXPECT(::getdomainname(name, sizeof name - 1) == 0 && std::string(name) == "sysctl-domain");
    LIVE_EXPECT(::gethostname(name, sizeof name - 1) == 0 && std::string(name) == "deltabox-live");
    // The host is gone from view.
    LIVE_EXPECT(::access(base.c_str(), F_OK) < 0);
    // And the rootfs runs programs.
    pid_t sh = ::fork();
    if (sh == 0) {
      ::execl("/bin/busybox", "busybox", "sh", "-c",
              "test -c /dev/null && test \"$(cat /data/data.txt)\" = hello && test -L /dev/stdin", nullptr);
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(sh, &status, 0);
    LIVE_EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  });
  for (const std::string& m : result.messages) MESSAGE(m);
  CHECK(result.exit_code == 0);
  CHECK(result.messages.empty());
  // Nothing leaked into the host's mount table.
  CHECK(watched_mounts(watched) == mounts_before);
  CHECK(fs_magic("/etc") != TMPFS_MAGIC);
}

TEST_CASE("rootfs: live refusals and error messages") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root");
    return;
  }
  LiveBundle bundle;
  const std::vector<std::string> watched = {bundle.base().string(), "/etc", "/proc"};
  const auto mounts_before = watched_mounts(watched);
  fs::create_symlink("/etc", bundle.rootfs() / "proc-link");
  const std::string rootfs = bundle.rootfs().string();
  const std::string base = bundle.base().string();

  // Each case must fail with an error mentioning every fragment.
  struct Case {
    const char* name;
    oci::Mount mount;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {"proc on a symlink", make_mount("/proc-link", "proc", "proc", {}),
       {"mount proc on /proc-link (in rootfs)", "ordinary directory"}},
      {"tmpfs over /proc", make_mount("/proc", "tmpfs", "tmpfs", {}), {"not of type proc"}},
      {"bind inside /proc", make_mount("/proc/sys/kernel", "bind", "/tmp", {"bind"}), {"inside /proc"}},
      {"bad tmpfs option", make_mount("/bad", "tmpfs", "tmpfs", {"size=lots"}),
       {"mount tmpfs on /bad (in rootfs)", "size", "Invalid argument"}},
      {"unknown filesystem", make_mount("/nofs", "no-such-fs", "x", {}),
       {"mount no-such-fs on /nofs (in rootfs)", "fsopen", "No such device"}},
      {"missing bind source", make_mount("/missing", "bind", "does-not-exist", {"rbind"}),
       {"bind-mount " + base + "/does-not-exist on /missing (in rootfs)", "No such file or directory"}},
      {"mount over the root", make_mount("/", "tmpfs", "tmpfs", {}), {"container's root"}},
      {"cgroup without a mounter", make_mount("/sys/fs/cgroup", "cgroup2", "cgroup", {}), {"no cgroup mounter"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    oci::Config config;
    config.mounts = {c.mount};
    LiveResult result = run_isolated([&] {
      deltabox::MountContext ctx{config, rootfs, base, false, nullptr, ""};
      deltabox::set_root_propagation("");
      deltabox::bind_rootfs(rootfs);
      try {
        deltabox::mount_entries(ctx);
        report("no error");
      } catch (const deltabox::Error& e) {
        // errno texts are compared case-insensitively (util/error lower-cases them, like Go).
        auto lower = [](std::string s) {
          for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          return s;
        };
        const std::string what = e.what();
        for (const std::string& f : c.fragments) {
          if (lower(what).find(lower(f)) == std::string::npos) {
            report(fmt::format("\"{}\" lacks \"{}\"", what, f));
          }
        }
      }
    });
    for (const std::string& m : result.messages) MESSAGE(m);
    CHECK(result.exit_code == 0);
    CHECK(result.messages.empty());
  }
  // The proc-link -> /etc refusal happened before anything was mounted on the host's /etc.
  CHECK(watched_mounts(watched) == mounts_before);

  SUBCASE("sysctl keys") {
    CHECK(deltabox::sysctl_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward");
    CHECK(deltabox::sysctl_path("kernel.shm_rmid_forced") == "/proc/sys/kernel/shm_rmid_forced");
    for (const char* bad : {"", "net/ipv4", "..", "net..x", ".net", "net.", "a/../b"}) {
      CAPTURE(bad);
      CHECK_THROWS_AS(deltabox::sysctl_path(bad), deltabox::Error);
    }
  }
}

TEST_CASE("rootfs: device list and /dev setup decisions") {
  oci::Config config;
  CHECK(deltabox::needs_dev_setup(config));
  config.mounts = {make_mount("/dev", "tmpfs", "tmpfs", {})};
  CHECK(deltabox::needs_dev_setup(config));
  config.mounts = {make_mount("/dev/", "none", "/dev", {"rbind"})};
  CHECK_FALSE(deltabox::needs_dev_setup(config));
  config.mounts = {make_mount("/dev", "bind", "/dev", {})};
  CHECK_FALSE(deltabox::needs_dev_setup(config));

  auto devices = deltabox::devices_to_create(config);
  REQUIRE(devices.size() == 6);
  std::set<std::string> paths;
  for (const auto& d : devices) {
    paths.insert(d.path);
    CHECK(d.type == "c");
    CHECK(d.file_mode == 0666u);
    CHECK(d.uid == 0u);
    CHECK(d.gid == 0u);
  }
  CHECK(paths == std::set<std::string>{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"});

  config.linux = oci::Linux{};
  config.linux->devices = {
      oci::Device{"c", "/dev/null", 1, 3, 0600u, 1000u, 1000u},
      oci::Device{"b", "/dev/sda", 8, 0, std::nullopt, std::nullopt, std::nullopt},
      oci::Device{"c", "/dev/ptmx", 5, 2, std::nullopt, std::nullopt, std::nullopt},
      oci::Device{"p", "/dev/fifo", 0, 0, 0100644u, std::nullopt, std::nullopt},
  };
  devices = deltabox::devices_to_create(config);
  REQUIRE(devices.size() == 5 + 3);
  CHECK(std::count_if(devices.begin(), devices.end(), [](const oci::Device& d) { return d.path == "/dev/null"; }) == 1);
  const oci::Device& null = devices[5];
  CHECK(null.path == "/dev/null");
  CHECK(null.file_mode == 0600u);
  CHECK(null.uid == 1000u);
  const oci::Device& sda = devices[6];
  CHECK(sda.type == "b");
  CHECK(sda.file_mode == 0666u);
  CHECK(sda.uid == 0u);
  CHECK(devices[7].path == "/dev/fifo");
  CHECK(devices[7].file_mode == 0644u);  // type bits in fileMode are dropped
  CHECK(std::none_of(devices.begin(), devices.end(), [](const oci::Device& d) { return d.path == "/dev/ptmx"; }));

  CHECK(deltabox::root_propagation_flags("") == (MS_SLAVE | MS_REC));
  CHECK(deltabox::root_propagation_flags("shared") == (MS_SHARED | MS_REC));
  CHECK(deltabox::root_propagation_flags("rprivate") == (MS_PRIVATE | MS_REC));
  CHECK(deltabox::root_propagation_flags("unbindable") == (MS_UNBINDABLE | MS_REC));
  CHECK_THROWS_AS(deltabox::root_propagation_flags("bogus"), deltabox::Error);
}

TEST_CASE("rootfs: live no-pivot with bind-mounted devices") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root");
    return;
  }
  LiveBundle bundle;
  const std::vector<std::string> watched = {bundle.base().string(), "/proc", "/sys", "/dev"};
  const auto mounts_before = watched_mounts(watched);
  const std::string rootfs = bundle.rootfs().string();
  const std::string base = bundle.base().string();

  oci::Config config;
  config.root = oci::Root{rootfs, false};
  config.mounts = {
      make_mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      make_mount("/dev", "tmpfs", "tmpfs", {"nosuid", "mode=755", "ro"}),
  };
  LiveResult result = run_isolated([&] {
    // in_user_namespace only switches device creation to binds here; we are really root.
    deltabox::MountContext ctx{config, rootfs, base, true, nullptr, ""};
    deltabox::prepare_rootfs(ctx, true);
    deltabox::finalize_rootfs(config);
    char self[16] = {};
    LIVE_EXPECT(::readlink("/proc/self", self, sizeof self - 1) > 0 && std::string(self) == "1");
    LIVE_EXPECT(::access("/bin/busybox", X_OK) == 0);
    LIVE_EXPECT(::access(base.c_str(), F_OK) < 0);
    // The host's /sys and /proc were hidden before the chroot: only our procfs is left.
    LIVE_EXPECT(watched_mounts({"/sys"}).empty());
    struct stat st {};
    LIVE_EXPECT(::stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3);
    LIVE_EXPECT(::stat("/dev/tty", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 5);
    LIVE_EXPECT(is_readonly("/dev"));
  });
  for (const std::string& m : result.messages) MESSAGE(m);
  CHECK(result.exit_code == 0);
  CHECK(result.messages.empty());
  CHECK(watched_mounts(watched) == mounts_before);
}
