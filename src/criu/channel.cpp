#include "criu/channel.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "util/error.hpp"

namespace deltabox::criu {

namespace {

ssize_t retry_eintr(auto call) {
  ssize_t n;
  do n = call();
  while (n < 0 && errno == EINTR);
  return n;
}

// The next record's size without consuming it: SEQPACKET records are read whole or truncated.
ssize_t peek_size(int sock) {
  return retry_eintr([&] { return ::recv(sock, nullptr, 0, MSG_PEEK | MSG_TRUNC); });
}

}  // namespace

void send_packet_with_fd(int sock, std::span<const uint8_t> data, int fd) {
  iovec iov{const_cast<uint8_t*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  ssize_t n = retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); });
  if (n < 0) throw_errno("criu: send request");
  if (static_cast<size_t>(n) != data.size()) fail("criu: short send ({} of {} bytes)", n, data.size());
}

void send_packet(int sock, std::span<const uint8_t> data) { send_packet_with_fd(sock, data, -1); }

std::optional<Packet> recv_packet(int sock) {
  ssize_t size = peek_size(sock);
  if (size < 0) throw_errno("criu: receive response");
  Packet packet;
  packet.data.resize(static_cast<size_t>(size));
  iovec iov{packet.data.data(), packet.data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
  if (n < 0) throw_errno("criu: receive response");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
    packet.fd.reset(fd);
  }
  // A zero-length record with no fd is how a SEQPACKET peer's close reads.
  if (n == 0 && !packet.fd) return std::nullopt;
  if (msg.msg_flags & MSG_CTRUNC) fail("criu: a response carried more fds than expected");
  return packet;
}

}  // namespace deltabox::criu
