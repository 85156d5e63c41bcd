#pragma once
// linux.seccomp compiled with libseccomp, following runc's libcontainer/seccomp semantics.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <oci/config.hpp>

#include "util/fd.hpp"

namespace deltabox {

// A built, not yet loaded, libseccomp filter.
struct SeccompProgram {
  struct CtxDeleter {
    void operator()(void* ctx) const;  // seccomp_release
  };
  std::unique_ptr<void, CtxDeleter> ctx;  // scmp_filter_ctx
  // Some rule in the filter uses SCMP_ACT_NOTIFY: loading creates a listener fd for the agent.
  bool uses_notify = false;
  // Syscall names libseccomp does not know; runc skips them (with a debug log).
  std::vector<std::string> skipped_syscalls;
};

// Builds the filter without loading it. Throws Error naming the config path on an unknown
// action, operator, architecture or flag, e.g.
//   linux.seccomp.syscalls[3].action: unknown action "X"
// The filter does not set no_new_privs: the caller does, when process.noNewPrivileges says so
// (loading without it needs CAP_SYS_ADMIN).
SeccompProgram compile_seccomp(const oci::Seccomp& config, std::string_view path = "linux.seccomp");

// Loads the filter into the calling thread. A notify listener, if any, is closed.
void load_seccomp(const SeccompProgram& program);
inline void load(const SeccompProgram& program) { load_seccomp(program); }
// Loads the filter; returns the notify listener fd when the program uses SCMP_ACT_NOTIFY
// (to be sent to linux.seccomp.listenerPath), otherwise an invalid UniqueFd.
UniqueFd load_with_listener(const SeccompProgram& program);

// libseccomp's pseudo-filter-code rendering, for debugging and tests.
std::string seccomp_pfc(const SeccompProgram& program);

// What `features` reports, spelled and ordered like runc's lists.
std::vector<std::string> seccomp_known_actions();    // sorted
std::vector<std::string> seccomp_known_operators();  // sorted
std::vector<std::string> seccomp_known_archs();      // sorted
std::vector<std::string> seccomp_known_flags();      // TSYNC, SPEC_ALLOW, LOG
std::vector<std::string> seccomp_supported_flags();  // the known flags this libseccomp+kernel can set
std::string libseccomp_version();                    // "2.5.4"

}  // namespace deltabox
