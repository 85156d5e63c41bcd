// Capabilities, rlimits and loopback setup. Anything that changes process state runs in a forked
// child that reports through its exit code only (no doctest machinery after fork).
#include <doctest.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "linux/capabilities.hpp"
#include "linux/netlink.hpp"
#include "linux/rlimits.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/file.hpp"

using namespace deltabox;

namespace {

// Runs fn (returning 0 for success, or a number naming the failed check) in a child with a
// watchdog; returns the child's exit code, or 128+signal.
template <typename Fn>
int in_child(Fn&& fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(20);
    int rc = 99;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      rc = 98;
    } catch (...) {
      rc = 97;
    }
    ::_exit(rc);
  }
  REQUIRE(pid > 0);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// "CapEff:\t0000000000000020" -> 0x20
uint64_t status_mask(const char* field) {
  std::string status = read_file("/proc/self/status");
  auto at = status.find(std::string(field) + ":");
  if (at == std::string::npos) return ~uint64_t{0};
  return std::stoull(status.substr(at + std::strlen(field) + 1), nullptr, 16);
}

uint64_t bit(int cap) { return uint64_t{1} << cap; }

bool have_effective(int cap) { return (status_mask("CapEff") & bit(cap)) != 0; }

}  // namespace

TEST_CASE("capabilities: name table round trips") {
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    const char* name = capability_name(cap);
    REQUIRE(name != nullptr);
    CHECK(capability_from_name(name) == cap);
  }
  CHECK(capability_from_name("CAP_CHOWN") == 0);
  CHECK(capability_from_name("CAP_SYS_ADMIN") == 21);
  CHECK(capability_from_name("CAP_CHECKPOINT_RESTORE") == 40);
  CHECK_FALSE(capability_from_name("CAP_NOT_A_CAP").has_value());
  CHECK_FALSE(capability_from_name("chown").has_value());
  CHECK(capability_name(-1) == nullptr);
  CHECK(capability_name(CAP_LAST_CAP + 1) == nullptr);

  auto names = all_capability_names();
  REQUIRE(names.size() == 41);
  CHECK(names.front() == "CAP_CHOWN");
  CHECK(names.back() == "CAP_CHECKPOINT_RESTORE");
  CHECK(last_cap() >= 36);
  CHECK(last_cap() == last_cap());
}

TEST_CASE("capabilities: resolve collects unknown names and treats absent lists as empty") {
  oci::Capabilities caps;
  caps.bounding = {"CAP_KILL", "CAP_BOGUS", "CAP_NET_RAW"};
  caps.effective = {"CAP_KILL", "CAP_BOGUS"};
  caps.ambient = {"CAP_NET_RAW", "CAP_KILL"};
  auto sets = resolve_capabilities(caps);
  CHECK(sets.bounding == (bit(CAP_KILL) | bit(CAP_NET_RAW)));
  CHECK(sets.effective == bit(CAP_KILL));
  CHECK(sets.permitted == 0);
  CHECK(sets.inheritable == 0);
  CHECK(sets.ambient == (bit(CAP_KILL) | bit(CAP_NET_RAW)));
  CHECK(sets.ambient_list == std::vector<int>{CAP_NET_RAW, CAP_KILL});
  CHECK(sets.unknown == std::vector<std::string>{"CAP_BOGUS"});
}

TEST_CASE("capabilities: applying drops everything but CAP_KILL (child)") {
  if (!have_effective(CAP_SETPCAP)) return;  // cannot shrink the bounding set here
  int rc = in_child([] {
    oci::Capabilities caps;
    caps.bounding = caps.effective = caps.permitted = std::vector<std::string>{"CAP_KILL", "CAP_NOPE"};
    auto unknown = apply_capabilities(caps);
    if (unknown != std::vector<std::string>{"CAP_NOPE"}) return 1;
    if (status_mask("CapEff") != bit(CAP_KILL)) return 3;
    if (status_mask("CapPrm") != bit(CAP_KILL)) return 4;
    if (status_mask("CapBnd") != bit(CAP_KILL)) return 5;
    if (status_mask("CapInh") != 0 || status_mask("CapAmb") != 0) return 6;
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("capabilities: runc's setuid sequence keeps ambient caps for a non-root user (child)") {
  if (!have_effective(CAP_SETPCAP) || !have_effective(CAP_SETUID) || !have_effective(CAP_SETGID)) return;
  int rc = in_child([] {
    oci::Capabilities caps;
    caps.bounding = {"CAP_KILL", "CAP_NET_BIND_SERVICE"};
    caps.effective = caps.permitted = caps.inheritable = caps.ambient =
        std::vector<std::string>{"CAP_NET_BIND_SERVICE"};
    auto sets = resolve_capabilities(caps);
    apply_bounding_set(sets);
    keep_caps_across_setuid(true);
    change_user(1000, 1001, {1001, 2000}, true);
    keep_caps_across_setuid(false);
    auto warnings = apply_capability_sets(sets);
    if (!warnings.empty()) return 1;
    uid_t r, e, s;
    if (::getresuid(&r, &e, &s) < 0 || r != 1000 || e != 1000 || s != 1000) return 2;
    gid_t gr, ge, gs;
    if (::getresgid(&gr, &ge, &gs) < 0 || gr != 1001 || ge != 1001 || gs != 1001) return 3;
    gid_t groups[8];
    if (::getgroups(8, groups) != 2 || groups[0] != 1001 || groups[1] != 2000) return 4;
    const uint64_t nbs = bit(CAP_NET_BIND_SERVICE);
    if (status_mask("CapBnd") != (nbs | bit(CAP_KILL))) return 5;
    if (status_mask("CapEff") != nbs || status_mask("CapPrm") != nbs) return 6;
    if (status_mask("CapInh") != nbs || status_mask("CapAmb") != nbs) return 7;
    return 0;
  });
  CHECK(rc == 0);
}

TEST_CASE("capabilities: ambient caps the kernel refuses are warnings, not errors (child)") {
  if (!have_effective(CAP_SETPCAP)) return;
  int rc = in_child([] {
    oci::Capabilities caps;  // ambient needs the cap in permitted and inheritable: here it is not
    caps.bounding = caps.effective = caps.permitted = std::vector<std::string>{"CAP_KILL"};
    caps.ambient = std::vector<std::string>{"CAP_KILL"};
    auto warnings = apply_capability_sets(resolve_capabilities(caps));
    if (warnings.size() != 1) return 1;
    if (warnings[0].find("can't raise ambient capability CAP_KILL") == std::string::npos) return 2;
    return status_mask("CapAmb") == 0 ? 0 : 3;
  });
  CHECK(rc == 0);
}

TEST_CASE("capabilities: rlimit names") {
  CHECK(rlimit_from_name("RLIMIT_NOFILE") == RLIMIT_NOFILE);
  CHECK(rlimit_from_name("RLIMIT_RTTIME") == RLIMIT_RTTIME);
  CHECK(rlimit_from_name("RLIMIT_AS") == RLIMIT_AS);
  CHECK_FALSE(rlimit_from_name("RLIMIT_BOGUS").has_value());
  CHECK_FALSE(rlimit_from_name("NOFILE").has_value());
  try {
    apply_rlimits({{"RLIMIT_CORE", 0, 0}, {"RLIMIT_BOGUS", 1, 1}});
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "process.rlimits[1].type: unknown rlimit \"RLIMIT_BOGUS\"");
  }
}

TEST_CASE("capabilities: rlimits lower in a child") {
  int rc = in_child([] {
    apply_rlimits({{"RLIMIT_NOFILE", 1000, 100}, {"RLIMIT_CORE", 0, 0}});
    rlimit got{};
    ::getrlimit(RLIMIT_NOFILE, &got);
    if (got.rlim_cur != 100 || got.rlim_max != 1000) return 1;
    ::getrlimit(RLIMIT_CORE, &got);
    return got.rlim_cur == 0 && got.rlim_max == 0 ? 0 : 2;
  });
  CHECK(rc == 0);
}

TEST_CASE("capabilities: raising a hard rlimit without CAP_SYS_RESOURCE explains itself") {
  rlimit now{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &now) == 0);
  // With CAP_SYS_RESOURCE the raise would succeed (and change this process): nothing to test.
  if (have_effective(CAP_SYS_RESOURCE) || now.rlim_max == RLIM_INFINITY) return;
  const uint64_t target = now.rlim_max + 1000;
  try {
    apply_rlimits({{"RLIMIT_NOFILE", target, target}});
    FAIL("expected EPERM");
  } catch (const Error& e) {
    CHECK(e.code() == EPERM);
    CHECK(std::string(e.what()) ==
          fmt::format("error setting rlimit type 7: setrlimit RLIMIT_NOFILE soft={0} hard={0}: raising the hard limit above {1} "
                      "needs CAP_SYS_RESOURCE: operation not permitted",
                      target, now.rlim_max));
  }
}

TEST_CASE("capabilities: rlimit soft above hard is rejected with the reason") {
  try {
    apply_rlimits({{"RLIMIT_NOFILE", 10, 20}});
    FAIL("expected EINVAL");
  } catch (const Error& e) {
    CHECK(e.code() == EINVAL);
    CHECK(std::string(e.what()).find("the soft limit is above the hard limit") != std::string::npos);
  }
}

TEST_CASE("capabilities: oom_score_adj is written (child)") {
  int rc = in_child([] {
    set_oom_score_adj(567);
    return read_file("/proc/self/oom_score_adj") == "567\n" ? 0 : 1;
  });
  CHECK(rc == 0);
}

TEST_CASE("capabilities: bring_up_loopback in a new network namespace (child)") {
  if (!have_effective(CAP_SYS_ADMIN) || !have_effective(CAP_NET_ADMIN)) return;
  int rc = in_child([] {
    if (::unshare(CLONE_NEWNET) < 0) return 1;
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return 2;
    auto lo_flags = [&] {
      ifreq req{};
      std::strcpy(req.ifr_name, "lo");
      return ::ioctl(sock.get(), SIOCGIFFLAGS, &req) < 0 ? -1 : req.ifr_flags;
    };
    int before = lo_flags();
    if (before < 0 || (before & IFF_UP)) return 3;  // a new netns starts with lo down
    bring_up_loopback();
    int after = lo_flags();
    if (after < 0 || !(after & IFF_UP)) return 4;
    bring_up_loopback();  // idempotent
    return 0;
  });
  CHECK(rc == 0);
}
