#pragma once
// linux.personality: the execution domain of the container process, set with personality(2).
//
// runc (libcontainer/specconv getLinuxPersonalityFromStr, init_linux.go setupPersonality)
// knows two domains, LINUX (PER_LINUX, 0x0000) and LINUX32 (PER_LINUX32, 0x0008), and sets the
// domain value alone, as the very last step of the standard init: after seccomp is loaded,
// right before it waits on the exec FIFO and execs (standard_init_linux.go). The runtime-spec
// defines no personality flags; runc warns and ignores any, we reject them (see below).
#include <string>

#include <oci/config.hpp>

namespace deltabox {

// The personality(2) value of a spec domain name; throws Error
//   linux.personality.domain: unknown domain "X"
unsigned long personality_domain(const std::string& domain);

// Pure check, usable at create time. Besides an unknown domain, any flag is refused, since no
// flag value is defined by the spec:
//   linux.personality.flags[0]: unknown flag "X"
void validate_personality(const oci::Personality& personality);

// Validates, then personality(domain). Throws Error("set personality LINUX32: <errno>").
// The process's personality survives execve, and is inherited by its children.
void apply_personality(const oci::Personality& personality);

// The calling process's persona (personality(0xffffffff)), e.g. to check PER_LINUX32.
unsigned long current_personality();

}  // namespace deltabox
