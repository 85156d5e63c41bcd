#include "linux/personality.hpp"

#include <sys/personality.h>

#include <cerrno>

#include "util/error.hpp"

namespace deltabox {

unsigned long personality_domain(const std::string& domain) {
  if (domain == "LINUX") return PER_LINUX;
  if (domain == "LINUX32") return PER_LINUX32;
  fail("linux.personality.domain: unknown domain \"{}\"", domain);
}

void validate_personality(const oci::Personality& personality) {
  personality_domain(personality.domain);
  if (!personality.flags.empty())
    fail("linux.personality.flags[0]: unknown flag \"{}\"", personality.flags.front());
}

void apply_personality(const oci::Personality& personality) {
  validate_personality(personality);
  unsigned long persona = personality_domain(personality.domain);
  if (::personality(persona) < 0) throw_errno(fmt::format("set personality {}", personality.domain));
}

unsigned long current_personality() {
  int persona = ::personality(0xffffffff);
  if (persona < 0) throw_errno("get personality");
  return static_cast<unsigned long>(persona);
}

}  // namespace deltabox
