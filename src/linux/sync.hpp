#pragma once
// Parent/child synchronisation over a SOCK_SEQPACKET socketpair: each message is a type and an
// optional payload, so an error text from a child reaches the parent intact.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "util/fd.hpp"

namespace deltabox {

enum class SyncMsg : uint32_t {
  error = 1,        // payload: error text; the sender exits afterwards
  map_ids,          // child unshared its user namespace; parent writes uid/gid maps
  ids_mapped,
  child_pid,        // payload: decimal pid
  run_hooks,        // payload: hook stage name; parent runs them and answers `proceed`
  proceed,
  ready,            // init finished its setup and waits for `start`
  eof,              // not sent: the peer closed (or exec'd: our sockets are CLOEXEC)
  seccomp_fd,       // payload: the child's seccomp notify fd number; the parent copies it
                    // (pidfd_getfd) and answers `proceed` (runc's procSeccomp)
};

class SyncChannel {
 public:
  SyncChannel() = default;
  explicit SyncChannel(UniqueFd fd) : fd_(std::move(fd)) {}
  static std::pair<SyncChannel, SyncChannel> make_pair();

  int fd() const { return fd_.get(); }
  void close() { fd_.reset(); }
  int release_fd() { return fd_.release(); }
  void send(SyncMsg type, std::string_view payload = {}) const;
  struct Message {
    SyncMsg type;
    std::string payload;
  };
  Message recv() const;
  // Receives one message and throws the child's error text if it is an error, or complains if
  // it is not the expected type.
  std::string expect(SyncMsg type, std::string_view what) const;

 private:
  UniqueFd fd_;
};

}  // namespace deltabox
