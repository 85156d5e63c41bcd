"""Drive the real podman (Debian's 4.3) with a runtime under test, everything under the test's tmp.

p = Podman(t)            # storage, runroot, tmpdir, config and events under t.path("podman")
p.import_busybox()       # localhost/busybox:test from the harness' busybox rootfs
p("run", "--rm", p.image, "echo", "hi")  -> Result

Why it is set up this way:
- CONTAINERS_CONF points at a config written here: podman then reads no system config, and the
  runtime's name (podman uses the basename of --runtime) is listed in runtime_supports_json, so
  podman passes --log-format=json and parses the runtime's error from its log file.
- vfs storage: no overlay mounts for the harness to find left behind; the image is 2 MB.
- cgroupfs manager with the containers' cgroup parent below this test's cgroup, so the leak
  check sees them; --network none (no netavark, no netns files).
- ulimits: podman's defaults exceed this machine's hard RLIMIT_NOFILE.
"""
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import time

from . import util
from .runtime import Result, RuntimeFailed
from .util import Skip

PODMAN = shutil.which("podman") or "/usr/bin/podman"
IMAGE = "localhost/busybox:test"


def _conf(runtime_path):
    name = os.path.basename(runtime_path)
    return (
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        'netns = "none"\n'
        "[engine]\n"
        f'runtime_supports_json = ["{name}", "runc", "crun"]\n'
        "[engine.runtimes]\n"
        f'{name} = ["{runtime_path}"]\n'
    )


def busybox_tarball(t):
    """A tar of the harness' busybox rootfs, made once per run (the tests run in parallel)."""
    tar = os.path.join(t.run["tmp"], "busybox-rootfs.tar")
    with open(tar + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(tar):
            with tarfile.open(tar + ".tmp", "w") as tf:
                tf.add(t.run["rootfs_template"], arcname=".")
            os.rename(tar + ".tmp", tar)
    return tar


class Podman:
    image = IMAGE

    def __init__(self, t, runtime=None, system_conf=False):
        """system_conf: use the machine's containers.conf (and its drop-ins, e.g. the one
        scripts/setup writes) instead of a config of the test's own."""
        if not os.access(PODMAN, os.X_OK):
            raise Skip("podman is not installed")
        if not shutil.which("conmon"):
            raise Skip("conmon is not installed")
        self.t = t
        self.runtime = runtime or t.runtime_path
        self.base = t.path("podman")
        for d in ("storage", "run", "tmp", "conf"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        self.conf = os.path.join(self.base, "conf", "containers.conf")
        with open(self.conf, "w") as f:
            f.write(_conf(self.runtime))
        self.system_conf = system_conf
        self.env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if not system_conf:
            self.env["CONTAINERS_CONF"] = self.conf
        self.cgroup_parent = t.cgroup_path("podman")
        self.history = []
        t.defer(self.cleanup)

    def argv(self, *args):
        return [PODMAN, "--root", os.path.join(self.base, "storage"),
                "--runroot", os.path.join(self.base, "run"),
                "--tmpdir", os.path.join(self.base, "tmp"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--runtime", self.runtime] + [str(a) for a in args]

    def __call__(self, *args, check=True, input=None, timeout=60, stdin=None):
        argv = self.argv(*args)
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, input=input.encode() if isinstance(input, str) else input,
                               stdin=None if input is not None else (stdin or subprocess.DEVNULL),
                               capture_output=True, env=self.env, timeout=timeout,
                               cwd=self.base)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"timed out after {timeout}s: {shlex.join(argv)}")
        r = Result(argv, p.returncode, p.stdout.decode(errors="replace"),
                   p.stderr.decode(errors="replace"), time.monotonic() - t0)
        self.history.append(r)
        if check and r.rc != 0:
            raise RuntimeFailed(f"podman failed: {r!r}")
        return r

    def popen(self, *args, **kw):
        return subprocess.Popen(self.argv(*args), env=self.env, cwd=self.base, **kw)

    def import_busybox(self):
        self("import", busybox_tarball(self.t), IMAGE)
        return IMAGE

    def run_args(self, *args):
        """`run` with this test's cgroup parent."""
        extra = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none") \
            if self.system_conf else ()
        return ("run", "--cgroup-parent", self.cgroup_parent) + extra + args

    def run(self, *args, **kw):
        return self(*self.run_args(*args), **kw)

    def inspect(self, name, fmt=None):
        if fmt:
            return self("inspect", "--format", fmt, name).out.strip()
        return json.loads(self("inspect", name).out)[0]

    def cleanup(self):
        """Remove every container, then the cgroups podman made for them and for conmon (it never
        removes those itself: its cgroup parent and `<parent>/conmon`)."""
        try:
            self("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        except AssertionError:
            pass
        dirs = [os.path.join(h, self.cgroup_parent.lstrip("/")) for h in self.t.run["hier"]]
        util.cgroup_kill_all([d for d in dirs if os.path.isdir(d)], exclude=(os.getpid(),))
        for d in dirs:
            if os.path.isdir(d):
                util.cgroup_rmtree(d)
