#pragma once
#include <oci/features.hpp>

namespace deltabox {
// What this build really implements, for `features` (consumers enable behaviour from it).
oci::Features runtime_features();
}  // namespace deltabox
