#include "process/listen_fds.hpp"

#include <cstdlib>
#include <string>

namespace deltabox {

int socket_activation_fds(std::vector<std::string>& extra_env) {
  const char* value = std::getenv("LISTEN_FDS");
  if (!value) return 0;
  int n = std::atoi(value);
  if (n <= 0) return 0;
  extra_env.push_back("LISTEN_FDS=" + std::to_string(n));
  extra_env.push_back("LISTEN_PID=1");
  return n;
}

}  // namespace deltabox
