#pragma once
#include <string>
#include <vector>

namespace deltabox {
// Sockets handed over by a socket-activation manager (LISTEN_FDS) pass on to the container
// process, as runc does: returns how many, and adds LISTEN_FDS/LISTEN_PID=1 to extra_env.
int socket_activation_fds(std::vector<std::string>& extra_env);
}  // namespace deltabox
