#include "container/helper.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "cgroups/manager.hpp"
#include "container/container.hpp"
#include "container/jobs.hpp"
#include "criu/pids.hpp"
#include "delta/store.hpp"
#include "linux/console.hpp"
#include "process/clone.hpp"
#include "process/finalize.hpp"
#include "util/error.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox {

namespace {

constexpr const char* kSocket = "helper.sock";
constexpr const char* kCgroupState = "helper-cgroup.json";

sockaddr_un address(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof addr.sun_path) fail("helper socket path too long: {}", path.string());
  std::strcpy(addr.sun_path, path.c_str());
  return addr;
}

UniqueFd connect_helper(const std::filesystem::path& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  auto addr = address(path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) return {};
  return fd;
}

UniqueFd listen_helper(const std::filesystem::path& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  auto addr = address(path);
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) throw_errno("bind helper socket");
  if (::listen(fd.get(), 16) < 0) throw_errno("listen on helper socket");
  return fd;
}

// The helper's own cgroup, "/deltabox-helper-<id>" in every hierarchy (inside the caller's
// cgroup namespace): deltabox's, so killing or freezing the container never touches it.
std::unique_ptr<cgroups::Manager> helper_cgroup(const StateStore& store, const std::string& id, bool create) {
  auto file = store.dir(id) / kCgroupState;
  // A helper before us (killed, or gone with an earlier anchor) made it: its record says which
  // directories are ours to remove; creating again would find them and claim none.
  try {
    return cgroups::Manager::from_state(nlohmann::json::parse(read_file(file)));
  } catch (const std::exception&) {
    if (!create) return nullptr;
  }
  auto manager = cgroups::Manager::for_container("/deltabox-helper-" + id, id, false);
  manager->create();
  write_file_atomic(file, manager->to_state().dump(), 0600, Durability::survive_process_crash);
  return manager;
}

// Double fork: the helper is nobody's child but the reaper's, in its own session and cgroup,
// with only the listening socket as fd 3.
void spawn_helper(const StateStore& store, const std::string& id, int listen_fd) {
  auto cgroup = helper_cgroup(store, id, true);
  UniqueFd cgroup_fd(cgroup->unified_dir_fd());
  const std::string root = store.root().string();
  const std::string log_file = (store.dir(id) / "helper.log").string();
  pid_t middle = clone_process(0, cgroup_fd.get());
  if (middle == 0) {
    try {
      reset_signals_in_child();
      ::setsid();
      cgroup->enter_self(cgroup_fd.valid());
      if (::fork() != 0) ::_exit(0);
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::dup2(listen_fd, 3);
      close_fds_except(4, {});
      const char* argv[] = {"deltabox", "--root", root.c_str(), "--log", log_file.c_str(), "helper", id.c_str(), nullptr};
      ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    } catch (...) {
    }
    ::_exit(127);
  }
  while (::waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void send_wake(int fd, int lock_fd) {
  if (lock_fd >= 0)
    send_fd(fd, lock_fd, "lock");
  else if (::send(fd, "wake", 4, MSG_NOSIGNAL) < 0)
    throw_errno("wake the container helper");
}

// ---- the helper ----

void run_job(const StateStore& store, const std::string& id, const Job& job, ContainerLock lock) {
  Container::adopt(store, id, std::move(lock)).run_job(job);
}

// Returns false when the container's lock is busy: the helper never waits for it, since the
// holder may be handing it over to us (an async snapshot) through the socket we would not read.
bool run_pending_jobs(const StateStore& store, const std::string& id) {
  JobQueue queue(store.dir(id));
  for (const auto& [file, job] : queue.pending()) {
    // A dump runs only under the lock its snapshot handed over (serve_client).
    if (job.type == Job::Type::dump) continue;
    if (job.type == Job::Type::spill) {
      try {
        Container::adopt(store, id, ContainerLock()).copy_cached_images(job.snapshot);
        ContainerLock lock = store.try_lock(id);
        if (!lock.held()) return false;  // the copy is kept; the swap is retried shortly
        Container::adopt(store, id, std::move(lock)).swap_cached_images(job.snapshot);
      } catch (const std::exception& e) {
        log::error("container {}: spill of snapshot {} failed: {}", id, job.snapshot, e.what());
      }
      queue.done(file);
      continue;
    }
    // Only a template's first step (a new generation id, the pool's bounds) needs the lock;
    // the rest of background work touches nothing a verb changes.
    ContainerLock lock;
    if (job.type == Job::Type::template_restore) {
      lock = store.try_lock(id);
      if (!lock.held()) return false;
    }
    try {
      run_job(store, id, job, std::move(lock));
    } catch (const std::exception& e) {
      log::error("container {}: {} job failed: {}", id, job.to_json()["type"].get<std::string>(), e.what());
    }
    queue.done(file);
  }
  return true;
}

// A lock handed over comes with a dump to finish: that one goes first, then the rest.
void serve_client(const StateStore& store, const std::string& id, int client) {
  char buf[16];
  char control[CMSG_SPACE(sizeof(int))];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (::recvmsg(client, &msg, MSG_CMSG_CLOEXEC) <= 0) return;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  ContainerLock lock{UniqueFd(fd)};
  JobQueue queue(store.dir(id));
  for (const auto& [file, job] : queue.pending()) {
    if (job.type != Job::Type::dump) continue;
    try {
      run_job(store, id, job, std::move(lock));
    } catch (const std::exception& e) {
      log::error("container {}: snapshot {} failed: {}", id, job.snapshot, e.what());
    }
    queue.done(file);
    break;
  }
}

}  // namespace

void wake_helper(const StateStore& store, const std::string& id, int lock_fd) {
  const auto path = store.dir(id) / kSocket;
  UniqueFd fd = connect_helper(path);
  if (!fd) {
    UniqueFd listener = listen_helper(path);
    spawn_helper(store, id, listener.get());
    fd = connect_helper(path);
    if (!fd) throw_errno("connect to the container helper");
  }
  send_wake(fd.get(), lock_fd);
}

int run_helper(const StateStore& store, const std::string& id, int listen_fd) {
  auto state = store.load(id);
  if (!state) return 0;
  auto container_state = ContainerState::from_json(*state);
  UniqueFd anchor = criu::pidfd_open(container_state.init_pid);
  if (!anchor || !same_process_alive(container_state.init_pid, container_state.init_start_time)) return 0;
  std::vector<UniqueFd> clients;
  bool idle = true;
  for (;;) {
    if (!store.exists(id)) return 0;
    std::vector<pollfd> fds{{anchor.get(), POLLIN, 0}, {listen_fd, POLLIN, 0}};
    for (const auto& c : clients) fds.push_back({c.get(), POLLIN, 0});
    // Jobs left behind a busy lock are retried shortly; otherwise sleep until woken.
    if (::poll(fds.data(), fds.size(), idle ? -1 : 20) < 0) {
      if (errno == EINTR) continue;
      throw_errno("helper: poll");
    }
    if (fds[0].revents) return 0;  // the anchor exited: the container is stopped
    if (fds[1].revents & POLLIN) {
      int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) clients.emplace_back(c);
    }
    for (size_t i = fds.size(); i-- > 2;) {
      if (!fds[i].revents) continue;
      char peek;
      if (::recv(clients[i - 2].get(), &peek, 1, MSG_PEEK) > 0) {
        serve_client(store, id, clients[i - 2].get());
      }
      clients.erase(clients.begin() + static_cast<long>(i - 2));
    }
    idle = run_pending_jobs(store, id);
  }
}

void stop_helper(const StateStore& store, const std::string& id) {
  auto cgroup = helper_cgroup(store, id, false);
  if (!cgroup) return;
  try {
    if (!cgroup->empty()) {
      cgroup->kill_all(SIGKILL);
      cgroup->wait_empty(std::chrono::seconds(10));
    }
    cgroup->destroy();
  } catch (const std::exception& e) {
    log::warn("stop the helper of {}: {}", id, e.what());
  }
}

}  // namespace deltabox
