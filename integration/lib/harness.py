"""The integration test runner.

Three processes, one per layer of isolation:

outer   (host namespaces)  makes the run's cgroup `deltabox-it-<pid>` below its own cgroup in
        every hierarchy, starts `unshare --mount --pid --cgroup --fork --mount-proc` inside it,
        and afterwards kills whatever is left in that cgroup and removes it.
reaper  (pid 1 of the new pid namespace) remounts /sys/fs/cgroup so that every hierarchy's
        root is the run's cgroup, mounts a tmpfs for all test files, forks the worker and
        reaps orphans until the worker exits.
worker  discovers integration/test_*.py and runs each test function in a forked child that
        lives in its own cgroup `test-<n>` (below the run's cgroup in every hierarchy); after
        each test it checks for leaks (mounts, cgroups, processes, state dirs) and cleans up.
"""
import argparse
import fnmatch
import importlib.util
import inspect
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback

from . import util
from .bundle import Bundle, make_template_rootfs
from .runtime import Runtime
from .util import Skip

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # integration/
REPO = os.path.dirname(HERE)
DEFAULT_RUNTIME = os.path.join(REPO, "build", "src", "cli", "deltabox")
PEER_RUNC = os.environ.get("RUNC", "/usr/sbin/runc")
INNER_ENV = "DELTABOX_IT_INNER"
CG = util.CGROUP_ROOT


def parse_args(argv):
    p = argparse.ArgumentParser(prog="integration/run",
                                description="deltabox end-to-end tests (run as root)")
    p.add_argument("-k", dest="patterns", action="append", default=[], metavar="PATTERN",
                   help="run tests whose name contains PATTERN (glob if it has * ? [); repeatable")
    p.add_argument("--runtime", default=None,
                   help="runtime binary (default: $DELTABOX or build/src/cli/deltabox)")
    p.add_argument("-j", dest="jobs", type=int, default=None,
                   help="parallel tests (default: number of CPUs, at most 4); -j1 = serial, "
                        "which also attributes leaks outside a test's cgroup exactly")
    p.add_argument("-v", dest="verbose", action="count", default=0,
                   help="on failure, print every runtime command and the test's output")
    p.add_argument("--timeout", type=float, default=120.0, help="per-test timeout (s)")
    p.add_argument("--list", action="store_true", help="list the tests and exit")
    a = p.parse_args(argv)
    if a.jobs is None:
        a.jobs = max(1, min(4, os.cpu_count() or 1))
    if a.jobs < 1:
        p.error("-j must be >= 1")
    rt = a.runtime or os.environ.get("DELTABOX") or DEFAULT_RUNTIME
    a.runtime = os.path.abspath(rt) if os.sep in rt else (shutil.which(rt) or rt)
    return a


def main(argv):
    args = parse_args(argv)
    if args.list:
        for name, _ in discover(args.patterns):
            print(name)
        return 0
    inner = os.environ.get(INNER_ENV)
    if inner is None:
        return outer_main(args, argv)
    info = json.loads(inner)
    if os.getpid() == 1:
        return reaper_main(args, info)
    raise SystemExit(f"{INNER_ENV} is set but this is not pid 1")


# =========================================================================== outer

def host_hierarchies():
    """[(name, mountpoint, fstype, mount_options, own_cgroup_dir)] for the host's cgroup mounts
    below /sys/fs/cgroup, plus the list of symlinks there."""
    own = {}
    for line in util.read_file("/proc/self/cgroup").splitlines():
        hid, ctrls, path = line.split(":", 2)
        own[(hid == "0" and ctrls == "") and "" or ",".join(sorted(ctrls.split(",")))] = path
    res = []
    for m in util.mountinfo():
        if m["fstype"] not in ("cgroup", "cgroup2") or os.path.dirname(m["mountpoint"]) != CG:
            continue
        name = os.path.basename(m["mountpoint"])
        if m["fstype"] == "cgroup2":
            key, opts = "", []
        else:
            opts = [o for o in m["superopts"].split(",")
                    if o not in ("rw", "ro") and not o.startswith("release_agent=")]
            ctrls = [o for o in opts if o not in ("xattr", "noprefix", "clone_children",
                                                  "cpuset_v2_mode", "none")]
            key = ",".join(sorted(ctrls))
            if not any(not o.startswith("name=") for o in ctrls):
                opts = ["none"] + [o for o in opts if o != "none"]
        if key not in own:
            continue
        rel = own[key]
        root = m["root"]
        if root != "/" and rel.startswith(root):
            rel = rel[len(root):] or "/"
        res.append({"name": name, "mountpoint": m["mountpoint"], "fstype": m["fstype"],
                    "options": opts, "own": os.path.normpath(m["mountpoint"] + "/" + rel)})
    links = {}
    for e in os.listdir(CG):
        p = os.path.join(CG, e)
        if os.path.islink(p):
            links[e] = os.readlink(p)
    return res, links


def outer_main(args, argv):
    if os.geteuid() != 0:
        print("integration/run must run as root", file=sys.stderr)
        return 2
    if not shutil.which("unshare"):
        print("integration/run needs unshare (util-linux)", file=sys.stderr)
        return 2
    hier, links = host_hierarchies()
    if not hier:
        print("no cgroup hierarchies found below /sys/fs/cgroup", file=sys.stderr)
        return 2
    name = f"deltabox-it-{os.getpid()}"
    tmp = os.path.join("/tmp", name)
    made = []
    try:
        os.mkdir(tmp, 0o755)
        for h in hier:
            d = os.path.join(h["own"], name)
            util.cgroup_mkdir(d)
            made.append(d)
            h["run"] = d
        info = {"name": name, "tmp": tmp, "hier": hier, "links": links,
                "outer_pid": os.getpid()}
        env = dict(os.environ)
        env[INNER_ENV] = json.dumps(info)
        env["DELTABOX"] = args.runtime
        procs_files = [os.path.join(d, "cgroup.procs") for d in made]

        def enter():
            for f in procs_files:
                with open(f, "w") as fh:
                    fh.write("0")

        cmd = ["unshare", "--mount", "--pid", "--cgroup", "--fork", "--mount-proc",
               "--propagation", "private", sys.executable, os.path.join(HERE, "run")] + argv
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the reaper forwards ^C
        try:
            p = subprocess.Popen(cmd, env=env, preexec_fn=enter)
            release_unshare(p, made, hier)
            rc = p.wait()
        finally:
            signal.signal(signal.SIGINT, old)
        if rc < 0:
            print(f"integration/run: the namespaced runner died of signal {-rc}", file=sys.stderr)
            rc = 1
        return rc
    finally:
        outer_cleanup(made, tmp)


def release_unshare(p, made, hier):
    """`unshare` itself had to be in the run's cgroup when it created the cgroup namespace;
    once its child (the reaper) exists, move unshare back to our own cgroup so that the run's
    cgroup holds only namespaced processes."""
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


def outer_cleanup(made, tmp):
    left = util.cgroup_kill_all(made, exclude=(os.getpid(),))
    if left:
        print(f"integration/run: killed {len(left)} leftover process(es) in the run's cgroup",
              file=sys.stderr)
    for d in made:
        try:
            util.cgroup_rmtree(d)
        except OSError as e:
            print(f"integration/run: WARNING: {e}", file=sys.stderr)
    if os.path.isdir(tmp) and not os.path.ismount(tmp):
        shutil.rmtree(tmp, ignore_errors=True)


# =========================================================================== reaper

def sh(*cmd):
    subprocess.run(cmd, check=True)


def reaper_main(args, info):
    tmp = info["tmp"]
    try:
        sh("mount", "--make-rprivate", "/")
        sh("mount", "-t", "tmpfs", "-o", "mode=755", "deltabox-it-cgroup", CG)
        for h in info["hier"]:
            mp = os.path.join(CG, h["name"])
            os.mkdir(mp)
            if h["fstype"] == "cgroup2":
                sh("mount", "-t", "cgroup2", "cgroup2", mp)
            else:
                sh("mount", "-t", "cgroup", "-o", ",".join(h["options"]), "cgroup", mp)
        for ln, target in info["links"].items():
            os.symlink(target, os.path.join(CG, ln))
        sh("mount", "-t", "tmpfs", "-o", "mode=755", "deltabox-it-tmp", tmp)
        # a runtime's default state (/run/runc, /run/deltabox) must not touch the host's
        sh("mount", "-t", "tmpfs", "-o", "mode=755", "deltabox-it-run", "/run")
        # snapshot layers go to a loop-backed btrfs the runtime makes inside the run's tmpfs
        os.environ["DELTABOX_STORE"] = os.path.join(tmp, "store")
        for h in info["hier"]:
            procs = util.read_file(os.path.join(CG, h["name"], "cgroup.procs")).split()
            if "1" not in procs:
                raise RuntimeError(f"cgroup {h['name']}: pid 1 is not at the namespace root")
    except Exception as e:
        print(f"integration/run: namespace setup failed: {e}", file=sys.stderr)
        return 1

    # wait until `unshare` (invisible here, listed as pid 0) has left the run's cgroup
    try:
        util.wait_for(lambda: all("0" not in util.read_file(os.path.join(CG, h["name"],
                                                                         "cgroup.procs")).split()
                                  for h in info["hier"]), timeout=10, what="unshare to leave")
    except AssertionError as e:
        print(f"integration/run: {e}", file=sys.stderr)
        return 1

    worker = os.fork()
    if worker == 0:
        rc = 1
        try:
            rc = worker_main(args, info)
        except BaseException:
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
    return status


# =========================================================================== worker

def discover(patterns):
    """[(name, function)] for every test_* function in integration/test_*.py, file order."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        modname = fn[:-3]
        spec = importlib.util.spec_from_file_location(modname, os.path.join(HERE, fn))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        spec.loader.exec_module(mod)
        funcs = [(f.__code__.co_firstlineno, n, f) for n, f in vars(mod).items()
                 if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == modname]
        for _, n, f in sorted(funcs, key=lambda x: x[0]):
            name = f"{modname}::{n}"
            if patterns and not any(_match(p, name) for p in patterns):
                continue
            tests.append((name, f))
    return tests


def _match(pat, name):
    if any(c in pat for c in "*?["):
        return fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(name.split("::")[-1], pat)
    return pat in name


class TestContext:
    """What a test function receives: `def test_x(t): ...`.

    t.rt           Runtime for the runtime under test (private --root)
    t.tmp          this test's scratch dir (on tmpfs)
    t.bundle(...)  a fresh busybox bundle
    t.id(s)        a container id unique in the run
    """

    def __init__(self, name, index, run, runtime_path):
        self.name = name
        self.index = index
        self.run = run
        self.tmp = os.path.join(run["tmp"], "tests", f"{index}")
        self.root = os.path.join(self.tmp, "root")
        self.runtime_path = runtime_path
        self.rt = Runtime(runtime_path, self.root, tmpdir=self.tmp)
        self.cgroup = f"/test-{index}"  # this test's cgroup, as seen inside the namespaces
        self._finalizers = []
        self._bundles = 0

    # -- identity
    @property
    def is_runc(self):
        return self.rt.is_runc

    def only_deltabox(self, why="deltabox-only expectation"):
        if self.is_runc:
            raise Skip(f"{why} (runtime under test is runc)")

    def runc_gap(self, why):
        """Skip under runc: a behaviour runc 1.1 lacks but deltabox must have."""
        if self.is_runc:
            raise Skip(f"runc 1.1 gap: {why}")

    def peer(self, path=PEER_RUNC, subdir="peer-root"):
        """A Runtime for the reference runc, with its own root."""
        return Runtime(path, os.path.join(self.tmp, subdir), tmpdir=self.tmp)

    # -- resources
    def id(self, suffix="c"):
        return f"t{self.index}-{suffix}"

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def bundle(self, name=None, args=None):
        self._bundles += 1
        name = name or f"bundle{self._bundles}"
        b = Bundle(os.path.join(self.tmp, name), self.run["rootfs_template"])
        if args:
            b.set_args(*args)
        return b

    def cgroup_path(self, leaf):
        """A linux.cgroupsPath inside this test's cgroup."""
        return f"{self.cgroup}/{leaf}"

    def cgroup_dir(self, hierarchy, rel=""):
        """Host-visible (namespace-visible) directory of a cgroup path in a hierarchy."""
        return os.path.join(CG, hierarchy, rel.lstrip("/"))

    def defer(self, fn, *a, **kw):
        self._finalizers.append((fn, a, kw))

    def finalize(self):
        errs = []
        for fn, a, kw in reversed(self._finalizers):
            try:
                fn(*a, **kw)
            except Exception as e:  # noqa: BLE001
                errs.append(f"finalizer {getattr(fn, '__name__', fn)}: {e}")
        return errs


def worker_main(args, info):
    try:
        tests = discover(args.patterns)
    except Exception:  # a test file that does not import is a failure, not zero tests
        traceback.print_exc()
        print("FAIL <discovery>: a test file failed to import")
        print("0 passed, 1 failed, 0 skipped")
        return 1
    run = {"tmp": info["tmp"], "hier": [os.path.join(CG, h["name"]) for h in info["hier"]]}
    os.makedirs(os.path.join(run["tmp"], "tests"))
    os.makedirs(os.path.join(run["tmp"], "logs"))
    run["rootfs_template"] = os.path.join(run["tmp"], "rootfs-template")
    make_template_rootfs(run["rootfs_template"])

    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    print(f"# runtime {args.runtime}; {len(tests)} tests; -j{args.jobs}; tmp {run['tmp']}",
          flush=True)
    baseline = {h: set(os.listdir(h)) for h in run["hier"]}
    pending = list(enumerate(tests, 1))
    running = {}  # pid -> job dict
    t_start = time.monotonic()

    def report(job, status, msg, detail=""):
        counts[status] += 1
        dur = time.monotonic() - job["t0"]
        if status == "PASS":
            line = f"PASS {job['name']} ({dur:.1f}s)"
        else:
            line = f"{status} {job['name']}: {msg}"
        print(line, flush=True)
        if detail:
            print(_indent(detail), flush=True)

    try:
        _loop(args, run, pending, running, counts, report, baseline)
    except KeyboardInterrupt:
        for job in running.values():
            util.cgroup_kill_all(job["cgroups"], timeout=5)
        print(f"INTERRUPTED with {len(running)} test(s) running and {len(pending)} not run",
              flush=True)
        counts["FAIL"] += 1
    if args.jobs > 1:
        leaks = root_leaks(run, baseline)
        if leaks:
            counts["FAIL"] += 1
            print("FAIL <end-of-run leak check>: " + "; ".join(leaks), flush=True)
    print(f"# {time.monotonic() - t_start:.1f}s", flush=True)
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped",
          flush=True)
    return 1 if counts["FAIL"] else 0


def _loop(args, run, pending, running, counts, report, baseline):
    runtime_ok = os.access(args.runtime, os.X_OK) and os.path.isfile(args.runtime)
    while pending or running:
        while pending and len(running) < args.jobs:
            idx, (name, fn) = pending.pop(0)
            if not runtime_ok:
                counts["FAIL"] += 1
                print(f"FAIL {name}: runtime binary not found or not executable: "
                      f"{args.runtime}", flush=True)
                continue
            job = start_test(idx, name, fn, run, args)
            running[job["pid"]] = job
        if not running:
            break
        fds = {j["fd"]: j for j in running.values() if j["fd"] is not None}
        r, _, _ = select.select(list(fds), [], [], 0.1)
        for fd in r:
            j = fds[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                j["buf"] += chunk
            else:
                os.close(fd)
                j["fd"] = None
        now = time.monotonic()
        for pid, job in list(running.items()):
            done, st = os.waitpid(pid, os.WNOHANG)
            if done == 0 and now > job["deadline"]:
                job["timed_out"] = True
                util.cgroup_kill_all(job["cgroups"], timeout=5)
                done, st = os.waitpid(pid, 0)
            if done == 0:
                continue
            if job["fd"] is not None:  # drain the result pipe
                while True:
                    chunk = os.read(job["fd"], 65536)
                    if not chunk:
                        break
                    job["buf"] += chunk
                os.close(job["fd"])
                job["fd"] = None
            del running[pid]
            finish_test(job, st, run, args, report, exact=(args.jobs == 1), baseline=baseline)


def _indent(s, prefix="    "):
    return "\n".join(prefix + ln for ln in s.rstrip("\n").split("\n"))


def start_test(idx, name, fn, run, args):
    ctx = TestContext(name, idx, run, args.runtime)
    os.makedirs(ctx.tmp)
    os.makedirs(ctx.root)
    cgroups = []
    for h in run["hier"]:
        d = os.path.join(h, f"test-{idx}")
        util.cgroup_mkdir(d)
        cgroups.append(d)
    logpath = os.path.join(run["tmp"], "logs", f"{idx}.log")
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            for d in cgroups:
                util.cgroup_enter(d)
            logfd = os.open(logpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(logfd, 1)
            os.dup2(logfd, 2)
            os.close(logfd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os.chdir(ctx.tmp)
            res = run_in_child(ctx, fn)
        except BaseException:
            res = {"status": "FAIL", "msg": "harness error in test child",
                   "detail": traceback.format_exc()}
            code = 1
        try:
            os.write(wfd, json.dumps(res).encode())
        finally:
            os._exit(code)
    os.close(wfd)
    return {"pid": pid, "fd": rfd, "buf": b"", "name": name, "idx": idx, "ctx": ctx,
            "cgroups": cgroups, "t0": time.monotonic(), "log": logpath,
            "deadline": time.monotonic() + getattr(fn, "timeout", args.timeout),
            "timed_out": False}


def run_in_child(ctx, fn):
    res = {"status": "PASS", "msg": "", "detail": ""}
    try:
        fn(ctx)
    except Skip as e:
        res = {"status": "SKIP", "msg": str(e) or "skipped", "detail": ""}
    except BaseException as e:  # noqa: BLE001 - every failure is reported
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        first = (str(e).strip().split("\n")[0] if str(e).strip() else type(e).__name__)
        if not isinstance(e, AssertionError):
            first = f"{type(e).__name__}: {first}"
        detail = "".join(tb[-6:])
        if len(detail) > 4000:
            detail = detail[:2000] + f"\n[... {len(detail) - 3500} chars ...]\n" + detail[-1500:]
        res = {"status": "FAIL", "msg": first[:300], "detail": detail}
    errs = ctx.finalize()
    if errs and res["status"] != "FAIL":
        res = {"status": "FAIL", "msg": "cleanup failed: " + errs[0], "detail": "\n".join(errs)}
    res["history"] = [{"cmd": " ".join(r.args[3:] if r.args[1] == "--root" else r.args),
                       "rc": r.rc, "out": r.out[-600:], "err": r.err[-600:]}
                      for r in ctx.rt.history]
    return res


def finish_test(job, st, run, args, report, exact, baseline):
    ctx = job["ctx"]
    try:
        res = json.loads(job["buf"].decode() or "null")
    except ValueError:
        res = None
    if job["timed_out"]:
        res = {"status": "FAIL", "msg": f"timed out after {job['deadline'] - job['t0']:.0f}s",
               "detail": "", "history": (res or {}).get("history", [])}
    elif res is None:
        res = {"status": "FAIL", "msg": f"test process died ({_wait_desc(st)})", "detail": ""}
    leaks = test_leaks(ctx, job["cgroups"])
    if exact:
        leaks += root_leaks(run, baseline)
    cleanup_errs = cleanup_test(ctx, job["cgroups"], run, baseline if exact else None)
    if leaks and res["status"] != "FAIL":
        res = {"status": "FAIL", "msg": "left behind: " + "; ".join(leaks), "detail": "",
               "history": res.get("history", [])}
    elif leaks:
        res["detail"] = (res.get("detail") or "") + "also left behind: " + "; ".join(leaks) + "\n"
    if cleanup_errs:
        res["detail"] = (res.get("detail") or "") + "cleanup: " + "; ".join(cleanup_errs) + "\n"
    detail = ""
    if res["status"] == "FAIL":
        detail = res.get("detail") or ""
        hist = res.get("history", [])
        shown = hist if args.verbose else hist[-3:]
        if shown:
            detail += "runtime calls%s:\n" % ("" if args.verbose else " (last 3)")
            for h in shown:
                detail += f"  $ {h['cmd']}  -> rc={h['rc']}\n"
                if h["out"].strip():
                    detail += _indent(h["out"].strip()[-400:], "      out| ") + "\n"
                if h["err"].strip():
                    detail += _indent(h["err"].strip()[-400:], "      err| ") + "\n"
        if args.verbose:
            log = util.read_file(job["log"], "")
            if log.strip():
                detail += "test output:\n" + _indent(log[-3000:]) + "\n"
    report(job, res["status"], res.get("msg", ""), detail)


def _wait_desc(st):
    if os.WIFSIGNALED(st):
        return f"signal {os.WTERMSIG(st)}"
    return f"exit {os.WEXITSTATUS(st)}"


def test_leaks(ctx, cgroups):
    leaks = []
    m = util.mounts_under(ctx.tmp)
    if m:
        leaks.append(f"mounts {sorted(set(m))}")
    found = {}
    for d in cgroups:
        for sub in util.cgroup_subdirs(d):
            h, _, rel = os.path.relpath(sub, CG).partition("/")
            found.setdefault(rel, []).append(h)
    if found:
        leaks.append(_describe_cgroups(found, len(cgroups)))
    pids = set()
    for d in cgroups:
        if os.path.isdir(d):
            pids |= util.cgroup_pids(d)
    if pids:
        leaks.append(f"processes {_describe_pids(pids)}")
    if os.path.isdir(ctx.root):
        left = os.listdir(ctx.root)
        if left:
            leaks.append(f"state dir entries {sorted(left)} in --root")
    return leaks


def root_leaks(run, baseline):
    """Leaks outside test cgroups: new cgroup dirs directly below the run's root that are not
    test-<n>, and processes in the run's cgroup other than the harness's (pid 1, the worker)."""
    leaks = []
    mine = {1, os.getpid()}
    found = {}
    for h in run["hier"]:
        for e in set(os.listdir(h)) - baseline[h]:
            if os.path.isdir(os.path.join(h, e)) and not e.startswith("test-"):
                found.setdefault(e, []).append(os.path.basename(h))
    if found:
        leaks.append(_describe_cgroups(found, len(run["hier"])))
    pids = set()
    for h in run["hier"]:
        pids |= util.cgroup_pids_outside(h, "test-")
    pids -= mine
    if pids:
        leaks.append(f"processes outside test cgroups {_describe_pids(pids)}")
    return leaks


def _describe_cgroups(found, nhier):
    """{relpath: [hierarchies]} -> 'cgroups a/b (all hierarchies), c (memory,pids)'."""
    parts = []
    for rel in sorted(found):
        hs = found[rel]
        parts.append(f"{rel} ({'all hierarchies' if len(hs) == nhier else ','.join(sorted(hs))})")
    return "cgroups " + ", ".join(parts)


def _describe_pids(pids):
    out = []
    for p in sorted(pids)[:8]:
        try:
            cmd = util.read_file(f"/proc/{p}/cmdline").replace("\0", " ").strip()
        except OSError:
            cmd = "?"
        out.append(f"{p}:{cmd[:60]}")
    return out + ([f"... {len(pids) - 8} more"] if len(pids) > 8 else [])


def cleanup_test(ctx, cgroups, run, baseline):
    errs = []
    try:
        # a runtime that misbehaved may leave containers: kill them through the test's cgroups
        # (which this harness created) -- never anything else.
        util.cgroup_kill_all(cgroups, timeout=10)
    except OSError as e:
        errs.append(str(e))
    if baseline is not None:
        extra = []
        for h in run["hier"]:
            extra += [os.path.join(h, e) for e in set(os.listdir(h)) - baseline[h]
                      if os.path.isdir(os.path.join(h, e)) and not e.startswith("test-")]
        mine = {1, os.getpid()}
        pids = set()
        for h in run["hier"]:
            pids |= util.cgroup_pids_outside(h, "test-")
        for p in pids - mine:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if extra:
            util.cgroup_kill_all(extra, exclude=mine, timeout=10)
            for d in extra:
                try:
                    util.cgroup_rmtree(d, timeout=5)
                except OSError as e:
                    errs.append(str(e))
    for d in cgroups:
        try:
            util.cgroup_rmtree(d)
        except OSError as e:
            errs.append(str(e))
    # unmount anything left below the test dir, deepest first
    for _ in range(3):
        ms = sorted(set(util.mounts_under(ctx.tmp)), key=len, reverse=True)
        if not ms:
            break
        for mp in ms:
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
    if util.mounts_under(ctx.tmp):
        errs.append(f"could not unmount {util.mounts_under(ctx.tmp)}; keeping {ctx.tmp}")
    else:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    return errs
