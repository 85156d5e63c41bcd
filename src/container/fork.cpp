// `fork`: new running containers from a snapshot (RL fan-out). Each is a container of its own —
// id, cgroup, namespaces, state, a copy of the snapshot's layer chain — whose first generation
// is the snapshot's process tree, restored. Its stdio is the caller's.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "container/container.hpp"
#include "container/criu_cache.hpp"
#include "container/generation.hpp"
#include "container/generation_criu.hpp"
#include "container/snapshot_tree.hpp"
#include "delta/store.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

// The fork's cgroup: an explicit cgroupsPath of the source names the source's own cgroup, so the
// fork takes a sibling named after itself; without one each container gets its own already.
std::string fork_cgroups_path(const std::string& source_path, const std::string& new_id) {
  if (source_path.empty()) return source_path;
  auto slash = source_path.rfind('/');
  return (slash == std::string::npos ? std::string() : source_path.substr(0, slash + 1)) + new_id;
}

// Runs fn(items[i]) for every item in `workers` forked processes (item i in worker i % workers);
// every item is tried. Throws the first failure, as "<item>: <message>".
void run_in_workers(size_t workers, const std::vector<std::string>& items,
                    const std::function<void(const std::string&)>& fn) {
  struct Worker {
    pid_t pid;
    UniqueFd errors;
  };
  std::vector<Worker> running;
  for (size_t w = 0; w < workers; ++w) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe");
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork a worker");
    if (pid == 0) {
      read_end.reset();
      std::string report;
      for (size_t i = w; i < items.size(); i += workers) {
        try {
          fn(items[i]);
        } catch (const std::exception& e) {
          if (report.empty()) report = fmt::format("{}: {}", items[i], e.what());
        }
      }
      if (!report.empty()) (void)!::write(write_end.get(), report.data(), report.size());
      ::_exit(report.empty() ? 0 : 1);
    }
    running.push_back({pid, std::move(read_end)});
  }
  std::string first;
  for (auto& worker : running) {
    std::string report;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(worker.errors.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) report.append(buf, static_cast<size_t>(n));
    int status = 0;
    while (::waitpid(worker.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (first.empty() && !report.empty()) first = report;
    if (first.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) first = "a fork worker died";
  }
  if (!first.empty()) throw Error(first);
}

}  // namespace

pid_t Container::restore_fork(const ForkSource& fork) {
  if (fork.anchor > 0) share_criu_cache(fork.anchor, state_.init_pid);
  UniqueFd images(::open(fork.images.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!images) throw_errno(fmt::format("open {}", fork.images.string()));
  oci::Config config = state_.parsed_config();
  auto cgroups = this->cgroups();
  UniqueFd state_dir(::open(store_->dir(state_.id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!state_dir) throw_errno(fmt::format("open {}", store_->dir(state_.id).string()));
  const GenerationCriu criu{.state = state_,
                            .config = config,
                            .container_cgroup = *cgroups,
                            .criu_path = state_.criu,
                            .work_dir_fd = state_dir.get()};
  auto restored = restore_generation(criu, "0", images.get(), DumpExternals::from_json(fork.meta.externals), false);
  auto& snap = *state_.snapshots;
  snap.workload_pid = restored.host_pid;
  snap.workload_start_time = process_start_time(restored.host_pid);
  snap.head = "";
  return restored.pid;
}

void Container::fork(const std::string& snapshot_ref, const std::vector<std::string>& new_ids,
                     const CreateOptions& base) {
  require_snapshots();
  if (status() == oci::Status::stopped) fail("container {} is not running", state_.id);
  auto store = delta::LayerStore::open(state_.snapshots->store);
  SnapshotTree tree(container_store_dir(store.root(), state_.id));
  auto meta = tree.find(snapshot_ref);
  if (!meta) fail("snapshot {} of container {} does not exist", snapshot_ref, state_.id);
  ForkSource source{meta->layers, tree.images(meta->id), *meta, state_.init_pid};
  auto build_one = [&](const std::string& id) {
    oci::Config config = state_.parsed_config();
    if (config.linux) config.linux->cgroups_path = fork_cgroups_path(config.linux->cgroups_path, id);
    CreateOptions options = base;
    options.id = id;
    options.bundle = state_.bundle;
    options.store = state_.snapshots->store;
    options.criu = state_.criu;
    build(*store_, options, std::move(config), &source);
  };
  // A fork is mostly CRIU restoring memory: one worker process per CPU builds its share of
  // the new containers. Each worker inherits our lock (the source stays as it is meanwhile).
  const size_t workers = std::min<size_t>(new_ids.size(), std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  if (workers <= 1) {
    for (const auto& id : new_ids) build_one(id);
    return;
  }
  run_in_workers(workers, new_ids, build_one);
}

}  // namespace deltabox
