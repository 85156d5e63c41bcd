// `checkpoint`: dump the container's process tree with CRIU, as runc does, minus what makes
// runc slow here: we freeze the cgroup ourselves (CRIU's own freezer polls in 100 ms steps on
// cgroup v1), skip the iptables network lock unless TCP connections are to be kept, and, like
// runc, leave the network namespace's contents to whoever configured it (empty_ns).
#include <sys/stat.h>
#include <unistd.h>

#include "container/checkpoint_common.hpp"
#include "container/checkpoint_externals.hpp"
#include "container/container.hpp"
#include "criu/client.hpp"
#include "util/error.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

// runc's prepareImagePaths: the parent must be relative to the images and exist there.
void check_parent_path(const std::filesystem::path& images, const std::string& parent) {
  if (parent.empty()) return;
  if (parent.front() == '/') fail("--parent-path must be relative");
  auto real = (images / parent).lexically_normal();
  struct stat st {};
  if (::stat(real.c_str(), &st) < 0) throw_errno(fmt::format("invalid --parent-path: stat {}", real.string()));
  if (!S_ISDIR(st.st_mode)) fail("invalid --parent-path: stat {}: not a directory", real.string());
}

// runc's --page-server parsing (net.SplitHostPort, then a numeric port).
void check_page_server(const std::string& value) {
  if (value.empty()) return;
  auto colon = value.rfind(':');
  std::string host = colon == std::string::npos ? "" : value.substr(0, colon);
  std::string port = colon == std::string::npos ? "" : value.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || port.empty()) fail("Use --page-server ADDRESS:PORT to specify page server");
  if (port.find_first_not_of("0123456789") != std::string::npos) fail("Invalid port number");
  fail("--page-server is not supported by deltabox");
}

// Thaws on the way out unless told the cgroup must stay frozen (a paused container, or one about
// to be killed).
class FreezeGuard {
 public:
  explicit FreezeGuard(cgroups::Manager& cgroups) : cgroups_(cgroups) {
    cgroups_.freeze();
    frozen_ = true;
  }
  FreezeGuard(const FreezeGuard&) = delete;
  FreezeGuard& operator=(const FreezeGuard&) = delete;
  ~FreezeGuard() {
    if (!frozen_) return;
    try {
      cgroups_.thaw();
    } catch (const std::exception& e) {
      log::warn("thaw after checkpoint: {}", e.what());
    }
  }
  void keep_frozen() { frozen_ = false; }

 private:
  cgroups::Manager& cgroups_;
  bool frozen_ = false;
};

std::string freeze_cgroup_path(const cgroups::Manager& cgroups) {
  auto path = cgroups.path("");
  return path.empty() ? cgroups.path("freezer") : path;
}

}  // namespace

void Container::checkpoint(const CheckpointOptions& options) {
  const auto status = this->status();
  if (status == oci::Status::created || status == oci::Status::stopped)
    fail("Container cannot be checkpointed in {} state", oci::status_name(status));
  if (state_.snapshots)
    fail("checkpoint of a snapshot-enabled container is not supported (use `deltabox snapshot`)");

  make_dirs(options.image_path, 0600);
  check_parent_path(options.image_path, options.parent_path);
  check_page_server(options.page_server);
  const auto cgroup_mode = parse_cgroup_mode(options.manage_cgroups_mode);
  const uint32_t empty_ns = parse_empty_ns(options.empty_ns);
  if (options.lazy_pages) fail("--lazy-pages is not supported by deltabox");

  criu::Client client(criu::SpawnOptions{.criu_path = options.criu_path.empty() ? "criu" : options.criu_path});
  // No soft-dirty tracking, no pre-dump: say it the way runc does before touching anything.
  if ((options.pre_dump || !options.parent_path.empty()) && !client.memory_tracking_supported())
    fail("CRIU is missing features");

  UniqueFd images = open_dir(options.image_path);
  UniqueFd work;
  if (!options.work_path.empty()) {
    make_dirs(options.work_path, 0700);
    work = open_dir(options.work_path);
  }
  const auto config = state_.parsed_config();
  const pid_t init = state_.init_pid;
  write_descriptors(images.get(), read_descriptors(init));
  auto stdio_files = external_stdio_files(init);
  write_external_stdio(images.get(), stdio_files);

  criu::DumpOptions o;
  o.pid = init;
  o.images_dir_fd = images.get();
  o.work_dir_fd = work.get();
  o.leave_running = true;  // without --leave-running we kill the tree ourselves: one cgroup.kill
  o.tcp_established = options.tcp_established;
  o.ext_unix_sk = options.ext_unix_sk;
  o.shell_job = options.shell_job;
  o.file_locks = options.file_locks;
  o.auto_dedup = options.auto_dedup;
  o.orphan_pts_master = true;  // a terminal's master lives with whoever got the console
  o.manage_cgroups_mode = cgroup_mode.value_or(criu::CgroupMode::ignore);
  o.empty_ns = empty_ns;
  o.skip_network_lock = !options.tcp_established;
  o.ext_mnt = dump_external_mounts(config, init);
  o.external = dump_external_namespaces(config);
  for (const auto& key : stdio_files)
    if (!key.empty()) o.external.push_back(key);
  if (!options.parent_path.empty()) {
    o.parent_img = options.parent_path;
    o.track_mem = true;
  }

  auto cgroups = this->cgroups();
  std::optional<FreezeGuard> freeze;
  if (status != oci::Status::paused && cgroups->can_freeze()) freeze.emplace(*cgroups);
  o.freeze_cgroup = freeze_cgroup_path(*cgroups);
  const auto log_dir = options.work_path.empty() ? options.image_path : options.work_path;
  try {
    if (options.pre_dump)
      client.pre_dump(o);
    else
      client.dump(o);
  } catch (const criu::CriuError& e) {
    throw_criu_failure(e, options.pre_dump ? "PRE_DUMP" : "DUMP", log_dir / o.log_file);
  }
  if (options.leave_running || options.pre_dump) return;  // the guard thaws what we froze
  // Destroyed while still frozen: nothing runs between the dump and the kill.
  if (freeze) freeze->keep_frozen();
  destroy(true);
}

}  // namespace deltabox
