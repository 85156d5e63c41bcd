#pragma once
// One criu_req or criu_resp per SOCK_SEQPACKET record; CRIU attaches an fd (SCM_RIGHTS) to some
// notifications ("orphan-pts-master").
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "util/fd.hpp"

namespace deltabox::criu {

struct Packet {
  std::vector<uint8_t> data;
  UniqueFd fd;  // at most one fd rides along; received CLOEXEC
};

void send_packet(int sock, std::span<const uint8_t> data);
// nullopt when the peer closed the connection (CRIU exited).
std::optional<Packet> recv_packet(int sock);

// Sends data with fd attached (fd < 0: none).
void send_packet_with_fd(int sock, std::span<const uint8_t> data, int fd);

}  // namespace deltabox::criu
