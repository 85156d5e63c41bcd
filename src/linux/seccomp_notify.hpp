#pragma once
// Handing a seccomp user-notification fd (SCMP_ACT_NOTIFY) to the agent at
// linux.seccomp.listenerPath, per runtime-spec config-linux.md "The Container Process State"
// and runc's sendContainerProcessState (libcontainer/process_linux.go):
//   * connect an AF_UNIX SOCK_STREAM socket to listenerPath;
//   * one sendmsg whose data is the ContainerProcessState JSON and whose SCM_RIGHTS carries
//     exactly the notify fd:
//       {"ociVersion":"1.2.0","fds":["seccompFd"],"pid":<pid>,"metadata":"<listenerMetadata>",
//        "state":{"ociVersion":..,"id":..,"status":..,"pid":..,"bundle":..,"annotations":{..}}}
//     ("metadata" is omitted when empty, like Go's omitempty; fds[i] names SCM_RIGHTS fd i);
//   * close the connection.
// What runc puts in it:
//   * container init (create/run): pid = init's host pid; state = the container's current OCI
//     state with status "creating" and pid = init's pid.
//   * exec: pid = the exec'd process's host pid; state status "running", state pid = the
//     container init's pid.
// runc sends it from the PARENT: the child (after loading the filter) reports its fd number
// over the sync socket, the parent copies the fd with pidfd_getfd(2), tells the child to go
// on (the child then closes its copy), and only then connects to the agent — so a slow or
// absent agent never runs inside the container's seccomp filter. A child that hits a notified
// syscall simply blocks until the agent answers.
#include <sys/types.h>

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "linux/sync.hpp"
#include "util/fd.hpp"

namespace deltabox {

inline constexpr const char* kSeccompFdName = "seccompFd";

// Pure: the ContainerProcessState JSON, keys in runc's order.
nlohmann::ordered_json container_process_state(pid_t pid, const std::string& metadata,
                                               const nlohmann::json& container_state);

// Connects to listener_path and sends container_process_state(...) with notify_fd attached.
// Errors follow runc:
//   failed to connect with seccomp agent specified in the seccomp profile: dial unix <path>: connect: <errno>
//   cannot send seccomp fd to <path>: <errno>
void send_seccomp_listener(const std::string& listener_path, int notify_fd, pid_t pid, const std::string& metadata,
                           const nlohmann::json& container_state);

// pidfd_open(pid) + pidfd_getfd(fd): a copy of another process's fd (runc's pidGetFd), for
// the parent to take the notify fd from the container process. Needs Linux 5.6 and ptrace
// access to pid. Errors: "pidfd_open: <errno>", "pidfd_getfd: <errno>".
UniqueFd copy_fd_from_process(pid_t pid, int fd);

// The parent's half of runc's procSeccomp: `payload` (a SyncMsg::seccomp_fd) names the fd in
// `pid`; copies it, lets the child go on (`proceed`), then gives the copy to `send` (which
// sends it to the agent). No `send`: "seccomp listenerPath is not set".
void receive_seccomp_fd(const SyncChannel& channel, pid_t pid, const std::string& payload,
                        const std::function<void(int notify_fd, pid_t pid)>& send);

}  // namespace deltabox
