#pragma once
// Event-driven waits on cgroup2 events files (kernfs reports changes as POLLPRI) and pidfds.
//
// Measured on this kernel: cgroup.events shows "frozen 1" ~0.1-0.2 ms after cgroup.freeze is
// written, but the kernel rate-limits the POLLPRI notification, which arrives ~15 ms later. So a
// freeze wait re-reads the file for a short bounded spin before sleeping in poll(), and an
// emptiness wait also watches pidfds: cgroup_exit() runs before the pidfd exit notification, so
// "populated 0" is readable the moment the last pidfd fires.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deltabox::cgroups {

using Clock = std::chrono::steady_clock;

// Value of `key` in a "key value" per line file such as cgroup.events; nullopt if absent.
std::optional<std::string> events_field(std::string_view content, std::string_view key);

// Blocks until `key` in the events file at `path` reads `want`: first re-reading for up to `spin`,
// then sleeping on POLLPRI. False when the deadline passes.
bool wait_events_field(const std::string& path, std::string_view key, std::string_view want,
                       Clock::time_point deadline, std::chrono::microseconds spin = std::chrono::milliseconds(2));

// Blocks until the cgroup2 events file at `path` reads "populated 0", waking on its POLLPRI and on
// the exit of any process list() names. False when the deadline passes.
bool wait_unpopulated(const std::string& path, const std::function<std::vector<pid_t>()>& list,
                      Clock::time_point deadline);

// Blocks until list() returns no process, sleeping on pidfds of what it last listed (v1, where
// there is no populated notification). False when the deadline passes.
bool wait_pids_gone(const std::function<std::vector<pid_t>()>& list, Clock::time_point deadline);

}  // namespace deltabox::cgroups
