// pause, resume, update, events: the container's cgroup as runc's verbs expose it.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <regex>

#include "cli/command.hpp"
#include "container/container.hpp"
#include "util/error.hpp"
#include "util/file.hpp"

namespace deltabox::cli {

namespace {

int pause_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  Container::load(store, flags.positional.at(0)).pause();
  return 0;
}

int resume_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  Container::load(store, flags.positional.at(0)).resume();
  return 0;
}

// docker/go-units RAMInBytes, which runc uses for memory flags: "128m", "1.5g", "512KiB".
int64_t ram_in_bytes(const std::string& text) {
  static const std::regex pattern(R"(^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$)");
  std::smatch m;
  if (!std::regex_match(text, m, pattern)) fail("invalid size: '{}'", text);
  double value = std::stod(m[1].str());
  static const std::string units = "kmgtp";
  if (m[3].matched) value *= std::pow(1024.0, static_cast<double>(units.find(static_cast<char>(std::tolower(m[3].str()[0]))) + 1));
  return static_cast<int64_t>(value);
}

int64_t memory_value(const std::string& text) { return text == "-1" ? -1 : ram_in_bytes(text); }

oci::Resources resources_from_file(const std::string& path) {
  std::string text = path == "-" ? read_file("/dev/stdin") : read_file(path);
  try {
    return oci::parse_resources(nlohmann::json::parse(text));
  } catch (const nlohmann::json::exception& e) {
    fail("unable to parse resources: {}", e.what());
  } catch (const oci::SpecError& e) {
    fail("invalid resources: {}", e.what());
  }
}

// Only the flags given become fields: update leaves everything else as it is.
oci::Resources resources_from_flags(const ParsedFlags& f) {
  oci::Resources r;
  auto memory = [&]() -> oci::MemoryResources& { if (!r.memory) r.memory.emplace(); return *r.memory; };
  auto cpu = [&]() -> oci::CpuResources& { if (!r.cpu) r.cpu.emplace(); return *r.cpu; };
  if (f.has("memory")) memory().limit = memory_value(f.get_string("memory"));
  if (f.has("memory-reservation")) memory().reservation = memory_value(f.get_string("memory-reservation"));
  if (f.has("memory-swap")) memory().swap = memory_value(f.get_string("memory-swap"));
  if (f.has("kernel-memory")) memory().kernel = memory_value(f.get_string("kernel-memory"));
  if (f.has("kernel-memory-tcp")) memory().kernel_tcp = memory_value(f.get_string("kernel-memory-tcp"));
  if (f.has("cpu-share")) cpu().shares = f.get_uint("cpu-share");
  if (f.has("cpu-quota")) cpu().quota = f.get_int("cpu-quota");
  if (f.has("cpu-period")) cpu().period = f.get_uint("cpu-period");
  if (f.has("cpu-burst")) cpu().burst = f.get_uint("cpu-burst");
  if (f.has("cpu-rt-runtime")) cpu().realtime_runtime = f.get_int("cpu-rt-runtime");
  if (f.has("cpu-rt-period")) cpu().realtime_period = f.get_uint("cpu-rt-period");
  if (f.has("cpuset-cpus")) cpu().cpus = f.get_string("cpuset-cpus");
  if (f.has("cpuset-mems")) cpu().mems = f.get_string("cpuset-mems");
  if (f.has("cpu-idle")) cpu().idle = f.get_int("cpu-idle");
  if (f.has("pids-limit")) r.pids = oci::PidsResources{f.get_int("pids-limit")};
  if (f.has("blkio-weight")) {
    r.block_io.emplace();
    r.block_io->weight = static_cast<uint16_t>(f.get_uint("blkio-weight"));
  }
  if (f.has("l3-cache-schema") || f.has("mem-bw-schema")) fail("Intel RDT is not supported by this runtime");
  return r;
}

int update_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  auto container = Container::load(store, flags.positional.at(0));
  container.update(flags.has("resources") ? resources_from_file(flags.get_string("resources"))
                                          : resources_from_flags(flags));
  return 0;
}

void print_event(const char* type, const std::string& id, const nlohmann::ordered_json* data) {
  nlohmann::ordered_json event;
  event["type"] = type;
  event["id"] = id;
  if (data) event["data"] = *data;
  std::printf("%s\n", event.dump().c_str());
  std::fflush(stdout);
}

int events_command(const GlobalOptions& global, const ParsedFlags& flags) {
  auto store = open_store(global);
  const std::string id = flags.positional.at(0);
  auto container = Container::peek(store, id);
  if (container.status() == oci::Status::stopped) fail("container with id {} is not running", id);
  if (flags.get_bool("stats")) {
    auto stats = container.stats();
    print_event("stats", id, &stats);
    return 0;
  }
  auto interval = flags.get_duration("interval");
  if (interval <= std::chrono::nanoseconds::zero()) fail("duration interval must be greater than 0");
  std::unique_ptr<cgroups::OomEvents> oom;
  try {
    oom = container.oom_events();
  } catch (const Error&) {
    // No memory controller: stats only.
  }
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    if (std::chrono::steady_clock::now() >= next) {
      if (container.status() == oci::Status::stopped) return 0;
      auto stats = container.stats();
      print_event("stats", id, &stats);
      next += interval;
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now());
    pollfd pfd{oom && !oom->done() ? oom->fd() : -1, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, wait.count()))) > 0 && oom)
      for (uint64_t n = oom->consume(); n > 0; --n) print_event("oom", id, nullptr);
  }
}

std::vector<FlagSpec> update_flags() {
  auto value = [](const char* name, const char* usage) { return FlagSpec{name, "", FlagKind::string, "value", "", usage}; };
  return {
      {"resources", "r", FlagKind::string, "value", "", "path to a file containing the resources to update or '-' to read from the standard input"},
      {"blkio-weight", "", FlagKind::uinteger, "value", "0", "Specifies per cgroup weight, range is from 10 to 1000"},
      {"cpu-period", "", FlagKind::uinteger, "value", "0", "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"},
      {"cpu-quota", "", FlagKind::integer, "value", "0", "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"},
      {"cpu-burst", "", FlagKind::uinteger, "value", "0", "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period"},
      {"cpu-share", "", FlagKind::uinteger, "value", "0", "CPU shares (relative weight vs. other containers)"},
      {"cpu-rt-period", "", FlagKind::uinteger, "value", "0", "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default"},
      {"cpu-rt-runtime", "", FlagKind::integer, "value", "0", "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period"},
      value("cpuset-cpus", "CPU(s) to use"),
      value("cpuset-mems", "Memory node(s) to use"),
      {"cpu-idle", "", FlagKind::integer, "value", "0", "set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE"},
      value("memory", "Memory limit (in bytes)"),
      value("memory-reservation", "Memory reservation or soft_limit (in bytes)"),
      value("memory-swap", "Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
      {"pids-limit", "", FlagKind::integer, "value", "0", "Maximum number of pids allowed in the container"},
      value("l3-cache-schema", "The string of Intel RDT/CAT L3 cache schema"),
      value("mem-bw-schema", "The string of Intel RDT/MBA memory bandwidth schema"),
      {"kernel-memory", "", FlagKind::string, "value", "", "Kernel memory limit (in bytes)", true},
      {"kernel-memory-tcp", "", FlagKind::string, "value", "", "Kernel memory limit (in bytes) for tcp buffer", true},
  };
}

}  // namespace

void add_resource_commands(std::vector<Command>& out) {
  out.push_back({"pause", "<container-id>", "pause suspends all processes inside the container", {}, 1, 1, true, pause_command});
  out.push_back({"resume", "<container-id>", "resumes all processes that have been previously paused", {}, 1, 1, true,
                 resume_command});
  out.push_back({"update", "[command options] <container-id>", "update container resource constraints", update_flags(),
                 1, 1, true, update_command});
  out.push_back({"events", "[command options] <container-id>", "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
                 {{"interval", "", FlagKind::duration, "value", "5s", "set the stats collection interval"},
                  {"stats", "", FlagKind::boolean, "", "", "display the container's stats then exit"}},
                 1, 1, true, events_command});
}

}  // namespace deltabox::cli
