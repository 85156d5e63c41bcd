#pragma once
// CVE-2019-5736: a process that enters a container (the init until it execs, an exec'd process
// until its execve) shows the runtime binary as /proc/<pid>/exe, and a privileged container
// process (CAP_SYS_PTRACE defeats the non-dumpable flag) could open it and overwrite the host's
// runtime. Before any such fork, the CLI re-executes itself from a read-only view of its binary:
// a detached overlayfs with no upper layer (runc 1.2's approach), so /proc/<pid>/exe is a file
// whose writes fail with EROFS and that leads nowhere else. A sealed memfd copy is the fallback.
namespace deltabox {

// Returns at once when already running sealed; otherwise re-execs (never returns) or, when
// neither way works, returns after a warning.
void ensure_sealed_executable(char** argv);

}  // namespace deltabox
