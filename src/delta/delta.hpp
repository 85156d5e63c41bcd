#pragma once
// DeltaFS: storage for snapshot-enabled containers (see store.hpp for the layer layout).
#include "delta/compact.hpp"
#include "delta/dedup.hpp"
#include "delta/overlay.hpp"
#include "delta/store.hpp"
