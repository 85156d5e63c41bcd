"""Run a benchmark inside new mount+pid+cgroup namespaces whose cgroup roots are a cgroup made
for the run -- the integration harness's isolation (integration/lib/harness.py), minus its test
scheduler.

outer   (host namespaces) makes `<prefix>-<pid>` below its own cgroup in every hierarchy, starts
        `unshare --mount --pid --cgroup --fork --mount-proc` inside it, and afterwards kills
        whatever is left in that cgroup and removes it (it made it; nothing else is touched).
reaper  (pid 1 of the new pid namespace) remounts /sys/fs/cgroup so that every hierarchy's root
        is the run's cgroup, mounts a tmpfs on the run's tmp dir and on /run, forks the worker
        and reaps orphans (container inits whose runtime exited) until the worker exits.
worker  calls work(info) in its own cgroup `work` (below the run's cgroup in every hierarchy),
        so every container cgroup a runtime makes relative to its own lands below it.

Usage from a script:

    import isolate
    sys.exit(isolate.main(sys.argv[1:], work, script=__file__, prefix="deltabox-bench"))

where work(info) -> int runs inside; info = {"tmp": <tmpfs dir>, "hier": [<cgroup dirs as seen
inside>], "work_cgroups": [...]}. The script is re-executed (same argv) under unshare.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

BENCH_LIB = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(BENCH_LIB))
INTEGRATION = os.path.join(REPO, "integration")
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)

from lib import util  # noqa: E402  (integration/lib)
from lib.harness import host_hierarchies  # noqa: E402

CG = util.CGROUP_ROOT
INNER_ENV = "DELTABOX_BENCH_INNER"


def main(argv, work, script, prefix="deltabox-bench"):
    inner = os.environ.get(INNER_ENV)
    if inner is None:
        return outer_main(argv, script, prefix)
    info = json.loads(inner)
    if os.getpid() != 1:
        raise SystemExit(f"{INNER_ENV} is set but this is not pid 1")
    return reaper_main(info, work)


# =========================================================================== outer

def outer_main(argv, script, prefix):
    if os.geteuid() != 0:
        print(f"{os.path.basename(script)} must run as root", file=sys.stderr)
        return 2
    if not shutil.which("unshare"):
        print("needs unshare (util-linux)", file=sys.stderr)
        return 2
    hier, links = host_hierarchies()
    if not hier:
        print("no cgroup hierarchies found below /sys/fs/cgroup", file=sys.stderr)
        return 2
    name = f"{prefix}-{os.getpid()}"
    tmp = os.path.join("/tmp", name)
    made = []
    try:
        os.mkdir(tmp, 0o755)
        for h in hier:
            d = os.path.join(h["own"], name)
            util.cgroup_mkdir(d)
            made.append(d)
        info = {"name": name, "tmp": tmp, "hier": hier, "links": links}
        env = dict(os.environ)
        env[INNER_ENV] = json.dumps(info)
        procs_files = [os.path.join(d, "cgroup.procs") for d in made]

        def enter():
            for f in procs_files:
                with open(f, "w") as fh:
                    fh.write("0")

        # --kill-child: if unshare dies, its child (the namespace's pid 1) is SIGKILLed, and with
        # it everything in the namespace
        cmd = ["unshare", "--mount", "--pid", "--cgroup", "--kill-child", "--mount-proc",
               "--propagation", "private", sys.executable, os.path.abspath(script)] + list(argv)
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the reaper forwards ^C
        # SIGTERM/SIGHUP (e.g. from `timeout`, which signals its whole process group): leave
        # through the finally below, so that the run's cgroups and tmp dir are still removed
        olds = {s: signal.signal(s, _terminate) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            p = subprocess.Popen(cmd, env=env, preexec_fn=enter)
            _release_unshare(p, made, hier)
            rc = p.wait()
        except _Terminated as e:
            print(f"interrupted by signal {e.args[0]}: cleaning up", file=sys.stderr)
            rc = 128 + e.args[0]
        finally:
            signal.signal(signal.SIGINT, old)
            for s, h in olds.items():
                signal.signal(s, h)
        if rc < 0:
            print(f"the namespaced runner died of signal {-rc}", file=sys.stderr)
            rc = 1
        return rc
    finally:
        _outer_cleanup(made, tmp)


class _Terminated(Exception):
    pass


def _terminate(sig, _frame):
    raise _Terminated(sig)


def _release_unshare(p, made, hier):
    """unshare had to be in the run's cgroup when it made the cgroup namespace; once its child
    exists, move it back so the run's cgroup holds only namespaced processes."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and p.poll() is None:
        if len(util.cgroup_pids(made[0]) - {p.pid}) >= 1:
            break
        time.sleep(0.005)
    for h in hier:
        try:
            util.cgroup_enter(h["own"], p.pid)
        except OSError:
            pass


def _outer_cleanup(made, tmp):
    left = util.cgroup_kill_all(made, exclude=(os.getpid(),))
    if left:
        print(f"killed {len(left)} leftover process(es) in the run's cgroup", file=sys.stderr)
    for d in made:
        try:
            util.cgroup_rmtree(d)
        except OSError as e:
            print(f"WARNING: {e}", file=sys.stderr)
    if os.path.isdir(tmp) and not os.path.ismount(tmp):
        shutil.rmtree(tmp, ignore_errors=True)


# =========================================================================== reaper

def _sh(*cmd):
    subprocess.run(cmd, check=True)


def reaper_main(info, work):
    tmp = info["tmp"]
    try:
        _sh("mount", "--make-rprivate", "/")
        _sh("mount", "-t", "tmpfs", "-o", "mode=755", "deltabox-bench-cgroup", CG)
        for h in info["hier"]:
            mp = os.path.join(CG, h["name"])
            os.mkdir(mp)
            if h["fstype"] == "cgroup2":
                _sh("mount", "-t", "cgroup2", "cgroup2", mp)
            else:
                _sh("mount", "-t", "cgroup", "-o", ",".join(h["options"]), "cgroup", mp)
        for ln, target in info["links"].items():
            os.symlink(target, os.path.join(CG, ln))
        _sh("mount", "-t", "tmpfs", "-o", "mode=755", "deltabox-bench-tmp", tmp)
        # a runtime's default state dir (/run/runc, /run/deltabox) must not touch the host's
        _sh("mount", "-t", "tmpfs", "-o", "mode=755", "deltabox-bench-run", "/run")
        for h in info["hier"]:
            procs = util.read_file(os.path.join(CG, h["name"], "cgroup.procs")).split()
            if "1" not in procs:
                raise RuntimeError(f"cgroup {h['name']}: pid 1 is not at the namespace root")
        util.wait_for(lambda: all("0" not in util.read_file(
            os.path.join(CG, h["name"], "cgroup.procs")).split() for h in info["hier"]),
            timeout=10, what="unshare to leave the run's cgroup")
    except Exception as e:  # noqa: BLE001
        print(f"namespace setup failed: {e}", file=sys.stderr)
        return 1

    hier = [os.path.join(CG, h["name"]) for h in info["hier"]]
    work_cgroups = []
    for h in hier:
        d = os.path.join(h, "work")
        util.cgroup_mkdir(d)
        work_cgroups.append(d)
    inner = {"tmp": tmp, "hier": hier, "work_cgroups": work_cgroups}

    sys.stdout.flush()
    sys.stderr.flush()
    worker = os.fork()
    if worker == 0:
        rc = 1
        try:
            for d in work_cgroups:
                util.cgroup_enter(d)
            rc = work(inner)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)

    def forward(sig, _frame):
        try:
            os.kill(worker, sig)
        except OSError:
            pass

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    status = 1
    while True:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == worker:
            status = os.waitstatus_to_exitcode(st)
            if status < 0:
                status = 128 - status
            break
    # whatever the runtimes left in the work cgroup: only cgroups this run made are touched
    # (and the kernel kills the rest of the pid namespace when pid 1 exits)
    util.cgroup_kill_all(work_cgroups, exclude=(1,), timeout=10)
    for d in work_cgroups:
        try:
            util.cgroup_rmtree(d, timeout=5)
        except OSError:
            pass
    # unmount what the runtimes left below tmp (deepest first) so loop devices autoclear
    for _ in range(3):
        ms = sorted(set(util.mounts_under(tmp)) - {tmp}, key=len, reverse=True)
        if not ms:
            break
        for mp in ms:
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
    return status
