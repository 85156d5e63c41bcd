#pragma once
#include <functional>

namespace deltabox {
// Runs fn in a forked child that joined the namespaces `flags` of the process behind pidfd (e.g.
// a container anchor's mount namespace, to mount a generation's root there). Throws the child's
// error. Not for CLONE_NEWPID, which only affects the child's children.
void run_in_namespaces(int pidfd, int flags, const std::function<void()>& fn);
}  // namespace deltabox
