#include "container/snapshot_classify.hpp"

#include <dirent.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox {

namespace {

std::set<unsigned long> socket_inodes(const std::vector<pid_t>& pids) {
  std::set<unsigned long> out;
  for (pid_t pid : pids) {
    auto dir = fmt::format("/proc/{}/fd", pid);
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) continue;
    while (auto* e = ::readdir(d.get())) {
      char target[64];
      auto link = dir + "/" + e->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      unsigned long inode;
      if (::sscanf(target, "socket:[%lu]", &inode) == 1) out.insert(inode);
    }
  }
  return out;
}

std::string read_or_empty(const std::string& path) {
  try {
    return read_file(path);
  } catch (const Error&) {
    return {};
  }
}

}  // namespace

std::vector<std::pair<unsigned long, std::string>> bound_inet_sockets(const std::string& text, const char* proto) {
  std::vector<std::pair<unsigned long, std::string>> out;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);  // header
  const bool tcp = std::string(proto).rfind("tcp", 0) == 0;
  while (std::getline(lines, line)) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    std::istringstream f(line);
    std::string sl, local, remote, state, txrx, trwhen, retr, uid, timeout;
    unsigned long inode = 0;
    if (!(f >> sl >> local >> remote >> state >> txrx >> trwhen >> retr >> uid >> timeout >> inode)) continue;
    auto colon = local.rfind(':');
    unsigned port = colon == std::string::npos ? 0 : std::stoul(local.substr(colon + 1), nullptr, 16);
    if (inode == 0 || port == 0) continue;
    if (tcp && state == "07") continue;  // TCP_CLOSE: not bound to anything that could collide
    std::string what = tcp ? (state == "0A" ? "listening" : "connected") : "bound";
    out.emplace_back(inode, fmt::format("{} {} socket on port {}", what, proto, port));
  }
  return out;
}

std::vector<std::pair<unsigned long, std::string>> abstract_unix_sockets(const std::string& text) {
  std::vector<std::pair<unsigned long, std::string>> out;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    // Num RefCount Protocol Flags Type St Inode Path
    std::istringstream f(line);
    std::string num, ref, proto, flags, type, st, path;
    unsigned long inode = 0;
    if (!(f >> num >> ref >> proto >> flags >> type >> st >> inode)) continue;
    if (f >> path && !path.empty() && path[0] == '@') out.emplace_back(inode, "abstract unix socket " + path);
  }
  return out;
}

Classification classify_generation(pid_t netns_pid, const std::vector<pid_t>& pids) {
  const auto ours = socket_inodes(pids);
  if (ours.empty()) return {};
  auto net = fmt::format("/proc/{}/net/", netns_pid);
  std::vector<std::pair<unsigned long, std::string>> named;
  for (const char* proto : {"tcp", "tcp6", "udp", "udp6"}) {
    auto found = bound_inet_sockets(read_or_empty(net + proto), proto);
    named.insert(named.end(), found.begin(), found.end());
  }
  auto unix_found = abstract_unix_sockets(read_or_empty(net + "unix"));
  named.insert(named.end(), unix_found.begin(), unix_found.end());
  for (const auto& [inode, description] : named)
    if (ours.count(inode)) return {SnapshotClass::cold_only, description};
  return {};
}

}  // namespace deltabox
