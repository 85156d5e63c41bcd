#include "linux/rlimits.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <string>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace deltabox {
namespace {

struct RlimitName {
  const char* name;
  int resource;
};

constexpr std::array kRlimits = {
    RlimitName{"RLIMIT_AS", RLIMIT_AS},
    RlimitName{"RLIMIT_CORE", RLIMIT_CORE},
    RlimitName{"RLIMIT_CPU", RLIMIT_CPU},
    RlimitName{"RLIMIT_DATA", RLIMIT_DATA},
    RlimitName{"RLIMIT_FSIZE", RLIMIT_FSIZE},
    RlimitName{"RLIMIT_LOCKS", RLIMIT_LOCKS},
    RlimitName{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    RlimitName{"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    RlimitName{"RLIMIT_NICE", RLIMIT_NICE},
    RlimitName{"RLIMIT_NOFILE", RLIMIT_NOFILE},
    RlimitName{"RLIMIT_NPROC", RLIMIT_NPROC},
    RlimitName{"RLIMIT_RSS", RLIMIT_RSS},
    RlimitName{"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    RlimitName{"RLIMIT_RTTIME", RLIMIT_RTTIME},
    RlimitName{"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    RlimitName{"RLIMIT_STACK", RLIMIT_STACK},
};

std::string limit_text(rlim_t value) {
  return value == RLIM_INFINITY ? std::string("unlimited") : std::to_string(value);
}

// The kernel answers EPERM/EINVAL without saying which rule was broken; name it.
std::string refusal_reason(int err, int resource, const rlimit& wanted, const rlimit& current) {
  if (wanted.rlim_cur > wanted.rlim_max) return "the soft limit is above the hard limit";
  if (err == EPERM && wanted.rlim_max > current.rlim_max)
    return fmt::format("raising the hard limit above {} needs CAP_SYS_RESOURCE",
                       limit_text(current.rlim_max));
  if (err == EPERM && resource == RLIMIT_NOFILE)
    return "the hard limit is above fs.nr_open";
  return {};
}

void apply_one(const char* name, int resource, const oci::Rlimit& limit, pid_t pid) {
  const rlimit wanted{static_cast<rlim_t>(limit.soft), static_cast<rlim_t>(limit.hard)};
  rlimit current{};
  if (::prlimit(pid, static_cast<__rlimit_resource>(resource), &wanted, &current) == 0) return;
  const int err = errno;
  // runc's wording first ("error setting rlimit type 7"), which callers may match on.
  std::string context = fmt::format("error setting rlimit type {}: setrlimit {} soft={} hard={}", resource, name,
                                    limit_text(wanted.rlim_cur), limit_text(wanted.rlim_max));
  // The failed call does not report the old limit: fetch it to explain the refusal.
  if (::prlimit(pid, static_cast<__rlimit_resource>(resource), nullptr, &current) == 0) {
    std::string reason = refusal_reason(err, resource, wanted, current);
    if (!reason.empty()) context += ": " + reason;
  }
  throw_errno(err, context);
}

}  // namespace

std::optional<int> rlimit_from_name(std::string_view name) {
  for (const auto& r : kRlimits)
    if (name == r.name) return r.resource;
  return std::nullopt;
}

void apply_rlimits(const std::vector<oci::Rlimit>& rlimits, pid_t pid) {
  for (size_t i = 0; i < rlimits.size(); ++i) {
    const auto& limit = rlimits[i];
    auto resource = rlimit_from_name(limit.type);
    if (!resource) fail("process.rlimits[{}].type: unknown rlimit \"{}\"", i, limit.type);
    apply_one(limit.type.c_str(), *resource, limit, pid);
  }
}

void set_oom_score_adj(int value, pid_t pid) {
  const std::string path =
      pid == 0 ? std::string("/proc/self/oom_score_adj") : fmt::format("/proc/{}/oom_score_adj", pid);
  const std::string text = std::to_string(value);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno(fmt::format("set oom_score_adj to {}: open {}", value, path));
  // EACCES here usually means lowering below a value set by a privileged writer, which needs
  // CAP_SYS_RESOURCE.
  if (::write(fd.get(), text.data(), text.size()) < 0)
    throw_errno(fmt::format("set oom_score_adj to {}", value));
}

}  // namespace deltabox
