#include "linux/netlink.hpp"

#include <libmnl/libmnl.h>
#include <net/if.h>  // before linux/rtnetlink.h: glibc's if.h clashes with linux/if.h
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "util/error.hpp"

namespace deltabox {
namespace {

struct MnlSocketCloser {
  void operator()(mnl_socket* sock) const { mnl_socket_close(sock); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketCloser>;

MnlSocket open_route_socket() {
  MnlSocket sock(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC));
  if (!sock) throw_errno("open rtnetlink socket");
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) throw_errno("bind rtnetlink socket");
  return sock;
}

// Sends one request asking for an ACK and throws with the kernel's errno if it refuses.
void transact(mnl_socket* sock, nlmsghdr* request, const char* what) {
  if (mnl_socket_sendto(sock, request, request->nlmsg_len) < 0) throw_errno(fmt::format("{}: send", what));
  char buf[MNL_SOCKET_BUFFER_SIZE];
  const unsigned portid = mnl_socket_get_portid(sock);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(fmt::format("{}: receive", what));
    }
    // The ACK is an NLMSG_ERROR with error 0; mnl_cb_run turns a non-zero one into errno.
    int rc = mnl_cb_run(buf, static_cast<size_t>(n), request->nlmsg_seq, portid, nullptr, nullptr);
    if (rc == MNL_CB_ERROR) throw_errno(what);
    if (rc == MNL_CB_STOP) return;
  }
}

}  // namespace

void bring_up_loopback() {
  // A fresh netns always numbers lo 1; look it up anyway in case it was moved or renamed.
  unsigned index = ::if_nametoindex("lo");
  if (index == 0) index = 1;

  MnlSocket sock = open_route_socket();
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = 1;
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = static_cast<int>(index);
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;  // touch only the UP bit
  transact(sock.get(), nlh, "set loopback up");
}

}  // namespace deltabox
