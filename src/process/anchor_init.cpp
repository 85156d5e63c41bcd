#include "process/anchor_init.hpp"

#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "linux/netlink.hpp"
#include "process/anchor.hpp"
#include "process/clone.hpp"
#include "util/error.hpp"

namespace deltabox {

namespace {

// Our mount namespace is a copy of the host's: keep what we mount (generation roots, /proc of
// the container's pid namespace for CRIU) from propagating back, and see the container's pids.
void prepare_anchor_mounts() {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) < 0) throw_errno("anchor: make / rslave");
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    throw_errno("anchor: mount proc");
}

[[noreturn]] void generation_zero(InitContext& init, AnchorSpec& anchor, SyncChannel channel) {
  die_with_parent(0);
  try {
    anchor.generation_cgroup->enter_self(anchor.generation_cgroup_fd >= 0);
  } catch (const std::exception& e) {
    channel.send(SyncMsg::error, e.what());
    ::_exit(1);
  }
  run_container_init(init, channel);
}

// Passes the setup handshake through until generation 0 waits for `start`. The CLI's second
// `proceed` (after it saved the state) also releases the anchor from the CLI's lifetime.
void relay_setup(const SyncChannel& cli, const SyncChannel& generation) {
  bool released = false;
  SyncMsg last_from_generation = SyncMsg::eof;
  for (;;) {
    pollfd fds[2] = {{cli.fd(), POLLIN, 0}, {generation.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("anchor: poll");
    }
    if (fds[1].revents) {
      auto msg = generation.recv();
      if (msg.type == SyncMsg::eof) fail("container init exited during setup");
      cli.send(msg.type, msg.payload);
      if (msg.type == SyncMsg::error) ::_exit(1);
      if (msg.type == SyncMsg::ready && released) return;
      last_from_generation = msg.type;
    }
    if (fds[0].revents) {
      auto msg = cli.recv();
      if (msg.type == SyncMsg::eof) ::_exit(1);
      if (msg.type == SyncMsg::proceed && last_from_generation == SyncMsg::ready) {
        if (::prctl(PR_SET_PDEATHSIG, 0) < 0) throw_errno("anchor: clear parent death signal");
        released = true;
      }
      generation.send(msg.type, msg.payload);
    }
  }
}

}  // namespace

void run_anchor_init(InitContext& init, AnchorSpec& anchor, SyncChannel& cli) {
  try {
    // Until a generation execs, /proc/<pid>/exe is this binary; the anchor never execs.
    ::prctl(PR_SET_DUMPABLE, 0);
    if (::setsid() < 0) throw_errno("anchor: setsid");
    anchor.anchor_cgroup->enter_self(anchor.anchor_cgroup_fd >= 0);
    prepare_anchor_mounts();
    // The container's network namespace is the anchor's too: a fork's has no generation 0 to
    // bring lo up, and CRIU's restore needs it.
    if (const auto* net = init.config->find_namespace(oci::NamespaceType::network); net && net->path.empty())
      bring_up_loopback();
    anchor.mount_generation_root();
    UniqueFd listener = anchor_listen(anchor.control_socket);
    // CRIU keeps its kernel-probe cache (/run/criu.kdat, ~30 ms a run) only on tmpfs. Mounted
    // after the control socket is bound: it hides the host's /run, the state dir's usual home.
    if (::mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m") < 0)
      throw_errno("anchor: mount tmpfs on /run");
    if (!anchor.start_generation) {
      // A fork: the CLI restores the first generation into our namespaces (CRIU's restored
      // root becomes our child as CRIU exits), then releases us naming it.
      cli.send(SyncMsg::ready);
      pid_t first = std::stoi(cli.expect(SyncMsg::proceed, "restore the first generation"));
      if (::prctl(PR_SET_PDEATHSIG, 0) < 0) throw_errno("anchor: clear parent death signal");
      cli.send(SyncMsg::ready);
      cli.close();
      ::_exit(run_anchor(first, std::move(listener)));
    }
    auto [ours, theirs] = SyncChannel::make_pair();
    pid_t generation = clone_process(CLONE_NEWPID | CLONE_NEWNS, anchor.generation_cgroup_fd);
    if (generation == 0) {
      ours.close();
      cli.close();
      listener.reset();
      generation_zero(init, anchor, std::move(theirs));
    }
    theirs.close();
    // The generation holds these; our copies would keep the start fifo readable after its exec.
    if (init.start_fifo >= 0) ::close(init.start_fifo);
    if (init.console_socket >= 0) ::close(init.console_socket);
    if (anchor.generation_cgroup_fd >= 0) ::close(anchor.generation_cgroup_fd);
    if (anchor.anchor_cgroup_fd >= 0) ::close(anchor.anchor_cgroup_fd);
    relay_setup(cli, ours);
    cli.close();
    ours.close();
    ::_exit(run_anchor(generation, std::move(listener)));
  } catch (const std::exception& e) {
    try {
      cli.send(SyncMsg::error, e.what());
    } catch (...) {
    }
    ::_exit(1);
  }
}

}  // namespace deltabox
