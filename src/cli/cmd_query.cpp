// state, list, ps: read-only views; they never take a container's lock.
#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

#include "cli/command.hpp"
#include "cli/table.hpp"
#include "container/container.hpp"
#include "util/error.hpp"

namespace deltabox::cli {

namespace {

std::string owner_name(uid_t uid) {
  passwd pw{}, *result = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &result) == 0 && result) return pw.pw_name;
  return "#" + std::to_string(uid);
}

int state_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  auto container = Container::peek(store, flags.positional.at(0));
  // runc prints MarshalIndent output: two-space indent, no trailing newline.
  std::string out = runc_state_json(container, "").dump(2);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int list_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  std::vector<nlohmann::ordered_json> states;
  for (const auto& id : store.ids()) {
    try {
      auto container = Container::peek(store, id);
      states.push_back(runc_state_json(container, owner_name(store.owner(id))));
    } catch (const Error&) {
      // Being created or deleted right now: not a container yet, or not any more.
    }
  }
  if (flags.get_bool("quiet")) {
    for (const auto& s : states) std::printf("%s\n", s["id"].get<std::string>().c_str());
    return 0;
  }
  const std::string format = flags.get_string("format");
  if (format == "json") {
    std::string out = states.empty() ? "null" : nlohmann::ordered_json(states).dump();
    std::printf("%s\n", out.c_str());
    return 0;
  }
  if (format != "table") fail("invalid format option");
  TabWriter table;
  table.row({"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"});
  for (const auto& s : states)
    table.row({s["id"].get<std::string>(), std::to_string(s["pid"].get<int>()), s["status"].get<std::string>(),
               s["bundle"].get<std::string>(), s["created"].get<std::string>(), s["owner"].get<std::string>()});
  std::fputs(table.render().c_str(), stdout);
  return 0;
}

std::string run_ps(const std::vector<std::string>& args) {
  int pipefd[2];
  check(::pipe2(pipefd, O_CLOEXEC), "pipe");
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    std::vector<char*> argv{const_cast<char*>("ps")};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp("ps", argv.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("ps: {}", out);
  return out;
}

// runc's table: host `ps` output (default -ef) filtered to the container's pids.
void print_ps_table(const std::vector<pid_t>& pids, std::vector<std::string> args) {
  if (args.empty()) args = {"-ef"};
  std::istringstream lines(run_ps(args));
  std::string header;
  std::getline(lines, header);
  std::istringstream fields(header);
  int pid_index = -1, i = 0;
  for (std::string f; fields >> f; ++i)
    if (f == "PID") pid_index = i;
  if (pid_index < 0) fail("couldn't find PID field in ps output");
  std::printf("%s\n", header.c_str());
  for (std::string line; std::getline(lines, line);) {
    std::istringstream cols(line);
    std::string col;
    for (int c = 0; c <= pid_index && cols >> col; ++c) {
    }
    int pid = std::atoi(col.c_str());
    if (std::find(pids.begin(), pids.end(), pid) != pids.end()) std::printf("%s\n", line.c_str());
  }
}

int ps_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  auto container = Container::peek(store, flags.positional.at(0));
  auto pids = container.status() == oci::Status::stopped ? std::vector<pid_t>{} : container.processes();
  const std::string format = flags.get_string("format");
  if (format == "json") {
    std::printf("%s\n", pids.empty() ? "null" : nlohmann::json(pids).dump().c_str());
    return 0;
  }
  if (format != "table") fail("invalid format option");
  print_ps_table(pids, {flags.positional.begin() + 1, flags.positional.end()});
  return 0;
}

}  // namespace

void add_query_commands(std::vector<Command>& out) {
  out.push_back({"state", "<container-id>", "output the state of a container", {}, 1, 1, true, state_command});
  out.push_back({"list", "[command options]", "lists containers started by deltabox with the given root",
                 {{"format", "f", FlagKind::string, "value", "table", "select one of: table or json (default: \"table\")"},
                  {"quiet", "q", FlagKind::boolean, "", "", "display only container IDs"}},
                 0, 0, true, list_command});
  out.push_back({"ps", "[command options] <container-id> [ps options]", "ps displays the processes running inside a container",
                 {{"format", "f", FlagKind::string, "value", "table", "select one of: table or json (default: \"table\")"}},
                 1, -1, false, ps_command});
}

}  // namespace deltabox::cli
