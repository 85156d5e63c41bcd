#include "criu/client.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <exception>
#include <string>

#include "criu/channel.hpp"
#include "criu/messages.hpp"
#include "criu/pids.hpp"
#include "util/file.hpp"
#include "util/log.hpp"

namespace deltabox::criu {

namespace {

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("wait status {}", status);
}

// One request/response exchange, answering the notifications CRIU sends in between. A handler
// that throws makes us answer "failed" (CRIU then aborts); its exception is rethrown after CRIU's
// final answer, because it says more than CRIU's "script error".
class Exchange {
 public:
  Exchange(SwrkProcess& criu, RequestType type) : criu_(criu), type_(type) {}

  std::optional<Response> run(const Bytes& request, const NotifyHandler& on_notify) {
    send_packet(criu_.socket(), request);
    for (;;) {
      auto packet = recv_packet(criu_.socket());
      if (!packet) return std::nullopt;
      Response resp = decode_response(packet->data);
      if (resp.type == RequestType::notify && resp.notify) {
        answer(*resp.notify, std::move(packet->fd), on_notify);
        continue;
      }
      if (resp.type != type_ && !(resp.type == RequestType::empty && !resp.success))
        fail("criu: a {} response to a {} request", request_name(resp.type), request_name(type_));
      if (!resp.success && handler_error_) std::rethrow_exception(handler_error_);
      return resp;
    }
  }

 private:
  void answer(const NotifyMessage& message, UniqueFd fd, const NotifyHandler& on_notify) {
    Notification n{message.script, message.pid, std::move(fd)};
    bool ok = true;
    if (on_notify && !handler_error_) {
      try {
        on_notify(n);
      } catch (...) {
        handler_error_ = std::current_exception();
        ok = false;
      }
    }
    send_packet(criu_.socket(), encode_notify_answer(ok));
  }

  SwrkProcess& criu_;
  RequestType type_;
  std::exception_ptr handler_error_;
};

int log_dir(int work_dir_fd, int images_dir_fd) { return work_dir_fd >= 0 ? work_dir_fd : images_dir_fd; }

// The failure of a dump or restore, with CRIU's own account from its log.
[[noreturn]] void throw_failure(const std::string& what, const std::optional<Response>& resp, SwrkProcess& criu,
                                int log_dirfd, const std::string& log_file) {
  std::string message = what;
  int cr_errno = 0;
  if (resp) {
    cr_errno = resp->cr_errno;
  } else {
    message += fmt::format(": criu {} without answering", describe_exit(criu.finish()));
  }
  std::string tail = log_tail(log_dirfd, log_file);
  if (tail.empty() && resp && !resp->cr_errmsg.empty()) tail = resp->cr_errmsg;
  throw CriuError(message, cr_errno, std::move(tail));
}

// A request that needs no images: check, version, feature check.
Response simple_request(const SpawnOptions& spawn, RequestType type, const Bytes& request,
                        std::span<const int> keep_fds = {}, bool quiet = false) {
  SwrkProcess criu = SwrkProcess::start(spawn, keep_fds, quiet);
  auto resp = Exchange(criu, type).run(request, nullptr);
  if (!resp) fail("criu {}: criu {} without answering", request_name(type), describe_exit(criu.finish()));
  return *resp;
}

// "Pid:" of a pidfd, from /proc/self/fdinfo.
pid_t pid_of_pidfd(int pidfd) {
  std::string info = read_file(fmt::format("/proc/self/fdinfo/{}", pidfd));
  size_t at = info.find("\nPid:");
  if (at == std::string::npos) return 0;
  return static_cast<pid_t>(std::stol(info.substr(at + 5)));
}

}  // namespace

int default_log_level() { return log::enabled(log::Level::debug) ? 4 : 2; }

Client::Client(SpawnOptions spawn) : spawn_(std::move(spawn)) {}

void Client::dump(const DumpOptions& options) { dump_as(options, RequestType::dump); }

void Client::pre_dump(const DumpOptions& options) { dump_as(options, RequestType::single_pre_dump); }

void Client::dump_as(const DumpOptions& options, RequestType type) {
  const Bytes request = encode_dump(options, type, static_cast<bool>(options.notify));
  const int keep[] = {options.images_dir_fd, options.work_dir_fd};
  SwrkProcess criu = SwrkProcess::start(spawn_, keep);
  auto resp = Exchange(criu, type).run(request, options.notify);
  if (!resp || !resp->success)
    throw_failure(fmt::format("criu {} of pid {} failed", request_name(type), options.pid), resp, criu,
                  log_dir(options.work_dir_fd, options.images_dir_fd), options.log_file);
  criu.finish();
}

RestoreResult Client::restore(const RestoreOptions& options) {
  // Notifications are always on: the first one that names the restored root arrives while the
  // root is still CRIU's child, the one moment its host pid can be found without a race.
  const Bytes request = encode_restore(options, true);
  std::vector<int> keep = {options.images_dir_fd, options.work_dir_fd};
  for (const auto& [key, fd] : options.inherit_fd) keep.push_back(fd);
  SwrkProcess criu = SwrkProcess::start(spawn_, keep);

  RestoreResult result;
  auto on_notify = [&](Notification& n) {
    if (n.pid && !result.pidfd) {
      result.host_pid = child_with_ns_pid(criu.pid(), *n.pid);
      if (result.host_pid > 0) result.pidfd = pidfd_open(result.host_pid);
    }
    if (n.script == "orphan-pts-master" && n.fd) result.pts_master = std::move(n.fd);
    if (options.notify) options.notify(n);
  };
  auto resp = Exchange(criu, RequestType::restore).run(request, on_notify);
  if (!resp || !resp->success || !resp->restored_pid)
    throw_failure("criu restore failed", resp, criu, log_dir(options.work_dir_fd, options.images_dir_fd),
                  options.log_file);
  result.pid = *resp->restored_pid;
  criu.finish();
  if (!result.pidfd) {
    // No notification named the root: find it from the namespace CRIU ran in.
    pid_t member = spawn_.ns_pidfd >= 0 ? pid_of_pidfd(spawn_.ns_pidfd) : ::getpid();
    result.host_pid = host_pid_of(result.pid, member);
    if (result.host_pid <= 0) fail("criu restore: restored pid {} not found", result.pid);
    result.pidfd = pidfd_open(result.host_pid);
  }
  return result;
}

void Client::check(int work_dir_fd) {
  // Without a work dir CRIU runs in "/" and logs to its stderr, which we silence: the answer
  // carries no reason, so a failing check is for `criu check` by hand (or pass a work dir).
  UniqueFd root;
  int dir = work_dir_fd;
  if (dir < 0) {
    root.reset(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("open /");
    dir = root.get();
  }
  const std::string log_file = work_dir_fd >= 0 ? "check.log" : "";
  const int keep[] = {dir};
  Response resp = simple_request(spawn_, RequestType::check, encode_check(dir, log_file), keep, work_dir_fd < 0);
  if (!resp.success)
    throw CriuError("criu check failed", resp.cr_errno, work_dir_fd >= 0 ? log_tail(dir, log_file) : resp.cr_errmsg);
}

std::string Client::version() {
  Response resp = simple_request(spawn_, RequestType::version, encode_simple(RequestType::version));
  if (!resp.success || !resp.version) fail("criu version: no version in the answer");
  return resp.version->to_string();
}

bool Client::memory_tracking_supported() {
  Response resp = simple_request(spawn_, RequestType::feature_check, encode_feature_check_mem_track());
  return resp.success && resp.mem_track.value_or(false);
}

}  // namespace deltabox::criu
