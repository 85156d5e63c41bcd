#include "linux/sync.hpp"

#include <sys/socket.h>

#include <cstring>

#include "util/error.hpp"

namespace deltabox {

namespace {
constexpr size_t kMaxMessage = 64 * 1024;
}

std::pair<SyncChannel, SyncChannel> SyncChannel::make_pair() {
  int fds[2];
  check(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), "socketpair");
  return {SyncChannel(UniqueFd(fds[0])), SyncChannel(UniqueFd(fds[1]))};
}

void SyncChannel::send(SyncMsg type, std::string_view payload) const {
  std::string buf(sizeof(uint32_t), '\0');
  auto raw = static_cast<uint32_t>(type);
  std::memcpy(buf.data(), &raw, sizeof raw);
  buf.append(payload.substr(0, kMaxMessage - sizeof raw));
  for (;;) {
    if (::send(fd_.get(), buf.data(), buf.size(), MSG_NOSIGNAL) >= 0) return;
    if (errno != EINTR) throw_errno("sync: send");
  }
}

SyncChannel::Message SyncChannel::recv() const {
  std::string buf(kMaxMessage, '\0');
  ssize_t n;
  do {
    n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) return {SyncMsg::eof, {}};
    throw_errno("sync: recv");
  }
  if (n == 0) return {SyncMsg::eof, {}};
  if (static_cast<size_t>(n) < sizeof(uint32_t)) fail("sync: short message");
  uint32_t raw;
  std::memcpy(&raw, buf.data(), sizeof raw);
  return {static_cast<SyncMsg>(raw), buf.substr(sizeof raw, static_cast<size_t>(n) - sizeof raw)};
}

std::string SyncChannel::expect(SyncMsg type, std::string_view what) const {
  auto msg = recv();
  if (msg.type == type) return std::move(msg.payload);
  if (msg.type == SyncMsg::error) throw Error(msg.payload);
  if (msg.type == SyncMsg::eof) fail("{}: child exited unexpectedly", what);
  fail("{}: unexpected message {}", what, static_cast<uint32_t>(msg.type));
}

}  // namespace deltabox
