#pragma once
#include "linux/sync.hpp"
#include "process/container_init.hpp"
#include "process/launcher.hpp"

namespace deltabox {

// The anchor's life: mounts generation 0's root in its own mount namespace, starts generation 0
// (which runs the normal container init sequence), relays the setup handshake between it and the
// CLI, then supervises it (run_anchor). Never returns.
[[noreturn]] void run_anchor_init(InitContext& init, AnchorSpec& anchor, SyncChannel& cli);

}  // namespace deltabox
