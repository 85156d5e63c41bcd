"""bench/lifecycle's `podman` row groups: the same runtimes driven through Debian's podman.

One PodmanRun per runtime (`podman --runtime <copy of deltabox|runc>`), each with podman storage,
runroot, tmpdir, config and events of its own on the run's tmpfs; the podman setup is the
integration tests' (integration/lib/podman.py, reused through a small stand-in for their test
object): CONTAINERS_CONF pointing [engine.runtimes] at the runtime copy (no system config is
read), vfs storage, cgroupfs manager, the ulimits this machine allows (nofile/nproc 1024:1024,
no CAP_SYS_RESOURCE) and `netns = "none"` in that config, and the busybox image imported from a
tarball of the run's busybox rootfs (no registry is reachable).

Timed, one podman CLI call each (posix_spawn + waitpid, like every other number):
  podman run --rm   `podman run --rm IMAGE true`
  podman pause      `podman pause NAME` of a running container (`sleep 1000000`)
  podman unpause    `podman unpause NAME`

Not timed: starting the long-running container that pause/unpause use (once, kept across
iterations), and, after every `run --rm`, waiting until no process (conmon, the `podman
container cleanup` it starts as exit command) is left below that container's cgroup parent, so
no tail of one measurement can land on the next (with podman 4.3 here they are already gone
when `podman run` returns: the wait is ~1 ms; --json records it).

Leftovers: cleanup() removes every container (`podman rm --all --force`), then reports
processes and cgroup dirs the runtime left below the cgroup parents (podman's own `conmon`
cgroup, which podman never removes, is not reported) and removes the parents; bench/lifecycle
also checks the runtime's state dir (`root`).
"""
import os
import shutil
import time

from lib import util  # integration/lib (bench/lib/isolate.py puts integration/ on sys.path)
from lib.podman import IMAGE, PODMAN, Podman, busybox_tarball
from lib.util import Skip
from timing import CommandFailed, spawn_timed

OPS = ["podman run --rm", "podman pause", "podman unpause"]


def unavailable():
    """Why podman cannot be measured here, or None."""
    if not os.access(PODMAN, os.X_OK):
        return f"podman is not installed ({PODMAN} not found)"
    if not shutil.which("conmon"):
        return "conmon is not installed"
    return None


class _Run:
    """The part of integration/lib/harness.py's test object that lib.podman.Podman uses."""

    def __init__(self, base, runtime, cgroup_parent, tmp, hier, rootfs_template):
        self.base = base
        self.runtime_path = runtime
        self.parent = cgroup_parent
        self.run = {"tmp": tmp, "hier": hier, "rootfs_template": rootfs_template}
        self.finalizers = []

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    def cgroup_path(self, leaf):
        return f"{self.parent}/{leaf}"

    def defer(self, fn, *a, **kw):
        self.finalizers.append((fn, a, kw))


class PodmanRun:
    """A row group `podman → <runtime>`: `group`, `plan`, `iteration(i)`, `cleanup()` like
    OciCli in bench/lifecycle. `baseline` names the group its ratios are against."""

    def __init__(self, group, key, runtime, tmp, hier, rootfs_template, env, baseline):
        self.group = group
        self.key = key
        self.baseline = baseline
        self.tmp = tmp
        self.hier = hier
        self.errfile = os.path.join(tmp, f"{key}.stderr")
        # the containers' cgroup parents, at the top of the run's cgroup (as integration's are
        # below the test's): one for run --rm (must be empty between measurements), one for the
        # long-running container that pause/unpause use
        self.parent_rm = f"/podman-{key}"
        self.parent_pause = f"/podman-{key}-pause"
        self.t = _Run(os.path.join(tmp, f"podman-{key}"), runtime, self.parent_rm, tmp, hier,
                      rootfs_template)
        self.p = Podman(self.t, runtime)  # raises lib.util.Skip without podman/conmon
        # the runtime sees what the plain rows' runtimes see (DELTABOX_STORE, PATH) via podman
        self.p.env.update(env)
        # podman passes no --root: the runtime keeps its state in its default /run/<name>
        # (the run's own tmpfs on /run, see isolate.py); bench/lifecycle's leftover check
        # lists what is left there
        self.root = os.path.join("/run", os.path.basename(runtime))
        self.paused_name = f"pb-{key}-pause"
        self.paused_up = False
        self.leaks = []  # what cleanup() found the runtime left (kept over every cleanup)
        self.parts = {}
        self.plan = [
            ("podman run --rm", self.op_run_rm),
            ("podman pause", self.op_pause),
            ("podman unpause", self.op_unpause),
        ]

    def setup(self):
        """Untimed: import the image (podman's first call also makes its database)."""
        r = self.p("import", _tarball(self.t), IMAGE, check=False, timeout=120)
        if r.rc != 0:
            raise Skip(f"podman import failed: {r.err.strip()[-300:]}")

    def version(self):
        r = self.p("--version", check=False)
        return r.out.strip() if r.rc == 0 else "?"

    # -- plumbing
    def call(self, *args):
        argv = self.p.argv(*args)
        secs, rc = spawn_timed(argv, self.p.env, errfile=self.errfile)
        if rc != 0:
            raise CommandFailed(argv, rc, _read(self.errfile))
        return secs

    def _dirs(self, parent):
        return [os.path.join(h, parent.lstrip("/")) for h in self.hier]

    def _pids(self, parent):
        pids = set()
        for d in self._dirs(parent):
            if os.path.isdir(d):
                pids |= util.cgroup_pids(d)
        return pids - {os.getpid()}

    def _drain(self, parent, timeout=20.0):
        """Wait until no process is left below parent (conmon, its exit command)."""
        deadline = time.monotonic() + timeout
        while self._pids(parent):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def iteration(self, i):
        self.parts = {}
        res = {}
        for op, fn in self.plan:
            try:
                res[op] = fn()
            except CommandFailed as e:
                self.cleanup()
                return res, f"{op}: {e}"
        res.update(self.parts)
        return res, None

    # -- measurements
    def op_run_rm(self):
        t = self.call("run", "--cgroup-parent", self.parent_rm, "--rm", IMAGE, "true")
        t0 = time.monotonic()
        if not self._drain(self.parent_rm):
            raise CommandFailed(["podman run --rm"], -1,
                                f"processes still below {self.parent_rm} after 20 s: "
                                f"{sorted(self._pids(self.parent_rm))}")
        self.parts["podman run --rm: conmon/cleanup tail (untimed)"] = time.monotonic() - t0
        return t

    def _ensure_running(self):
        if self.paused_up:
            return
        argv = self.p.argv("run", "--cgroup-parent", self.parent_pause, "-d", "--name",
                           self.paused_name, IMAGE, "sleep", "1000000")
        _, rc = spawn_timed(argv, self.p.env, errfile=self.errfile)
        if rc != 0:
            raise CommandFailed(argv, rc, _read(self.errfile))
        self.paused_up = True

    def op_pause(self):
        self._ensure_running()
        return self.call("pause", self.paused_name)

    def op_unpause(self):
        return self.call("unpause", self.paused_name)

    # -- cleanup
    def cleanup(self):
        """Untimed: remove every container, note what the runtime left, then remove the cgroup
        parents podman made (podman never removes those, nor `<parent>/conmon`: that is podman's
        own leftover, not the runtime's, and not reported)."""
        self.p("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        self.paused_up = False
        for parent in (self.parent_rm, self.parent_pause):
            self._drain(parent, timeout=10)
            pids = self._pids(parent)
            if pids:
                self.leaks.append(f"{len(pids)} process(es) below {parent}")
            left = set()
            for d in self._dirs(parent):
                for s in util.cgroup_subdirs(d):
                    rel = os.path.relpath(s, d)
                    if rel.split("/")[0] != "conmon":
                        left.add(rel)
            if left:
                self.leaks.append(f"cgroup dir(s) below {parent}: {sorted(left)[:4]}")
            dirs = [d for d in self._dirs(parent) if os.path.isdir(d)]
            util.cgroup_kill_all(dirs, exclude=(os.getpid(),))
            for d in dirs:
                try:
                    util.cgroup_rmtree(d)
                except OSError as e:
                    self.leaks.append(f"cannot remove {d}: {e}")
        r = self.p("ps", "--all", "--quiet", check=False)
        if r.out.strip():
            self.leaks.append(f"podman still lists {len(r.out.split())} container(s)")
        return self.leaks


def _tarball(t):
    return busybox_tarball(t)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""
