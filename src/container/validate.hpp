#pragma once
#include <oci/config.hpp>

namespace deltabox {
// The checks runc's config validator makes before anything is built, with runc's messages:
// settings that only make sense in a namespace the config does not create (hostname, sysctls,
// time offsets), mappings without a user namespace, and the like.
void validate_for_create(const oci::Config& config);
// The process settings a container process applies to itself just before execve (scheduler,
// ioPriority, execCPUAffinity): checked up front, for create and for exec alike.
void validate_process_attrs(const oci::Process& process);
}  // namespace deltabox
