"""Snapshots of containers podman made: deltabox's own verbs on a podman-managed container.

podman runs a snapshot-enabled container (`--annotation io.deltabox.snapshots=true`) under
conmon; the test then calls the deltabox CLI directly on it, in the runtime root podman's
runtime calls use, and checks that podman's view stays true across a rollback: the same
container and conmon-watched pid, its logs, exec, stop and the workload's exit code, and that
`podman rm -f` leaves nothing behind.

The runtime root: podman 4.3 passes no `--root` to the runtime (conmon's `--runtime-arg`s are
`--log-format=json --log <file>`), so the runtime uses its default, /run/deltabox as root (a
tmpfs private to the test run). runtime_root() reads conmon's command line, so it would follow
a `--root` should podman pass one.

The layer store: conmon starts the runtime with the environment podman gives conmon
(containers.conf `conmon_env_vars`), not podman's own, so $DELTABOX_STORE (the run's private
store) does not reach `create` by itself and the layers would go to the host's
/var/lib/deltabox. snap_podman() adds it to the test's containers.conf.
"""
import json
import os

from lib import util
from lib.checks import cgroup_dirs_named
from lib.podman import Podman
from lib.runtime import Runtime
from lib.snapshots import store_leftovers

ANNOTATION = ("--annotation", "io.deltabox.snapshots=true")

# Prints "tick <n> <marker>" every 0.1 s: n lives in the shell's memory (and in /state/n),
# marker is re-read from /state/marker each time. SIGTERM ends it with 7.
WORKLOAD = (
    "trap 'echo \"term $i\"; exit 7' TERM; "
    "mkdir -p /state; echo start > /state/marker; i=0; "
    "while true; do i=$((i+1)); echo $i > /state/n; read -r m < /state/marker; "
    "echo \"tick $i $m\"; sleep 0.1; done"
)
# The same, but SIGTERM is ignored (only SIGKILL ends it).
WORKLOAD_NO_TERM = "trap '' TERM; i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.1; done"

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def snap_podman(t):
    """A Podman whose runtime gets the run's layer store, with busybox imported; podman's calls
    are shown with the runtime's on failure."""
    t.only_deltabox("snapshots are a deltabox feature")
    p = Podman(t)
    store = os.environ.get("DELTABOX_STORE")
    assert store, "the harness sets DELTABOX_STORE"
    conf = util.read_file(p.conf)
    assert conf.count("[engine]\n") == 1, conf
    env = json.dumps([f"PATH={PATH}", f"DELTABOX_STORE={store}"])
    with open(p.conf, "w") as f:
        f.write(conf.replace("[engine]\n", f"[engine]\nconmon_env_vars = {env}\n"))
    p.history = t.rt.history
    p.import_busybox()
    return p


def run_snap(p, script=WORKLOAD, annotations=()):
    cid = p.run("-d", *ANNOTATION, *annotations, p.image, "sh", "-c", script).out.strip()
    assert len(cid) == 64, cid
    return cid


def conmon_runtime_args(p, cid):
    conmon = int(p.inspect(cid, "{{.State.ConmonPid}}"))
    argv = util.read_file(f"/proc/{conmon}/cmdline").split("\0")
    args = []
    for i, a in enumerate(argv):
        if a == "--runtime-arg" and i + 1 < len(argv):
            args.append(argv[i + 1])
        elif a.startswith("--runtime-arg="):
            args.append(a.split("=", 1)[1])
    return args


def runtime_root(p, cid):
    """The --root of podman's runtime calls for cid (conmon's --runtime-arg, else the runtime's
    default for root), checked to hold cid's state dir."""
    args = conmon_runtime_args(p, cid)
    root = "/run/deltabox"
    for i, a in enumerate(args):
        if a in ("--root", "-root") and i + 1 < len(args):
            root = args[i + 1]
        elif a.startswith(("--root=", "-root=")):
            root = a.split("=", 1)[1]
    assert os.path.isdir(os.path.join(root, cid)), \
        f"no state dir of {cid} in {root} (conmon's runtime args: {args})"
    return root


def podman_rt(t, p, cid):
    """A Runtime on podman's runtime root for cid (its calls join the test's history)."""
    rt = Runtime(t.runtime_path, runtime_root(p, cid), tmpdir=t.tmp)
    rt.history = t.rt.history
    assert store_leftovers(cid), f"{cid} has no layers in the run's store $DELTABOX_STORE"
    return rt


def snapshot(rt, cid, name):
    r = rt("snapshot", "--format", "json", "--name", name, cid, timeout=60)
    return json.loads(r.out)["id"]


def counter(p, cid):
    def read():
        r = p("exec", cid, "cat", "/state/n", check=False)
        return r.rc, r.out
    return util.read_counter(read)


def ticks(p, cid):
    """[(n, marker)] of the workload's tick lines in `podman logs`, in order."""
    res = []
    for line in p("logs", cid).out.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == "tick" and f[1].isdigit():
            res.append((int(f[1]), f[2]))
    return res


def ps_entry(p, cid):
    rows = [r for r in json.loads(p("ps", "--format", "json").out) if r["Id"] == cid]
    assert len(rows) == 1, f"podman ps does not list {cid} once: {rows}"
    return rows[0]


def procs_naming(cid):
    """pids whose command line mentions cid (conmon, the anchor, the helper, podman cleanup)."""
    res = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            argv = util.read_file(f"/proc/{d}/cmdline", "")
            if cid in argv and util.pid_alive(int(d)):
                res.append((int(d), argv.replace("\0", " ")[:120]))
    return res


def cgroups_naming(p, cid):
    """Cgroup dirs anywhere in the run whose name contains cid: podman's libpod-<id> (and the
    templates' leaves below it), the helper's deltabox-helper-<id>."""
    found = []
    for h in p.t.run["hier"]:
        for dirpath, dirnames, _ in os.walk(h):
            found += [os.path.join(dirpath, d) for d in dirnames if cid in d]
    return found


def assert_nothing_left(p, rt, cid):
    """Neither podman nor deltabox knows cid any more, and nothing of it is left: state dir,
    cgroups (the container's, its templates' leaves, the helper's), layer store entry,
    processes, mounts."""
    assert cid not in p("ps", "-aq", "--no-trunc").out, "podman still lists the container"
    r = rt("state", cid, check=False)
    assert r.rc != 0 and "does not exist" in r.err, r
    assert not os.path.lexists(os.path.join(rt.root, cid)), f"state dir {rt.root}/{cid} left"
    try:
        util.wait_for(lambda: not procs_naming(cid), timeout=10)
    except AssertionError:
        raise AssertionError(f"processes of {cid} left: {procs_naming(cid)}") from None
    cgs = cgroups_naming(p, cid)
    assert not cgs, f"cgroups left for {cid}: {cgs}"
    left = store_leftovers(cid)
    assert not left, f"layer store entries left for {cid}: {left}"
    ms = [m["mountpoint"] for m in util.mountinfo() if cid in m["mountpoint"] or cid in m["root"]]
    assert not ms, f"mounts left for {cid}: {ms}"


# ---------------------------------------------------------------- snapshot and rollback

def test_podman_snapshot_rollback(t):
    p = snap_podman(t)
    cid = run_snap(p)
    rt = podman_rt(t, p, cid)
    pid = p.inspect(cid, "{{.State.Pid}}")
    conmon = p.inspect(cid, "{{.State.ConmonPid}}")
    util.wait_for(lambda: len(ticks(p, cid)) > 3, what="the workload's output in podman logs")

    p("exec", cid, "sh", "-c", "echo at-snapshot > /state/file; echo doomed > /state/doomed")
    lo = counter(p, cid)
    assert lo > 0, f"cannot read the counter of {cid}"
    snap = snapshot(rt, cid, "before")
    hi = counter(p, cid)
    assert [r["id"] for r in json.loads(rt("snapshots", "--format", "json", cid).out)] == [snap]

    # After the snapshot: change, add and delete files, and let the counter run on.
    p("exec", cid, "sh", "-c", "echo changed > /state/file; echo new > /state/new; "
                               "rm /state/doomed; echo changed > /state/marker")
    util.wait_for(lambda: any(m == "changed" for _, m in ticks(p, cid)), what="'changed' ticks")
    util.wait_for(lambda: counter(p, cid) > hi + 10, what="the counter to run on")
    util.wait_for(lambda: template_ready(rt, cid, snap), timeout=20, what="the template")
    before_rollback = ticks(p, cid)

    rt("rollback", cid, snap, timeout=60)

    # The same container, running, watched by the same conmon through the same pid.
    row = ps_entry(p, cid)
    assert row["State"] == "running", row
    assert p.inspect(cid, "{{.State.Status}}") == "running"
    assert p.inspect(cid, "{{.State.Pid}}") == pid, "the container's pid changed"
    assert p.inspect(cid, "{{.State.ConmonPid}}") == conmon, "conmon changed"
    assert util.pid_alive(int(pid)) and util.pid_alive(int(conmon))

    # Files as they were at the snapshot (exec works after the rollback).
    r = p("exec", cid, "sh", "-c", "cat /state/file /state/doomed /state/marker; "
                                   "test -e /state/new && echo new-exists; true")
    assert r.out == "at-snapshot\ndoomed\nstart\n", r

    # Output written after the rollback reaches podman logs: the restored loop prints the
    # marker exec writes now. And the workload's memory was rolled back too: its count (a shell
    # variable) goes on from its value at the snapshot, once, in one unbroken sequence.
    p("exec", cid, "sh", "-c", "echo after > /state/marker")
    util.wait_for(lambda: any(m == "after" for _, m in ticks(p, cid)), timeout=10,
                  what="post-rollback output in podman logs")
    log = ticks(p, cid)
    assert log[:len(before_rollback)] == before_rollback, "podman logs lost lines"
    drops = [j for j in range(1, len(log)) if log[j][0] <= log[j - 1][0]]
    assert len(drops) == 1, f"the count went back {len(drops)} times, not once: {log}"
    old, new = log[:drops[0]], log[drops[0]:]
    assert lo <= new[0][0] <= hi + 1 and new[0][1] == "start", \
        f"after the rollback the workload printed {new[:3]}, not from its count at the " \
        f"snapshot ({lo}..{hi}); before it: {old[-3:]}"
    for seq in (old, new):
        assert [k for k, _ in seq] == list(range(seq[0][0], seq[0][0] + len(seq))), \
            f"ticks missing or repeated: {seq}"
    assert new[-1][1] == "after" and old[-1][1] == "changed", (old[-3:], new[-3:])

    # stop returns, and podman reports the workload's exit code (its TERM trap: 7).
    r = p("stop", "--time", "10", cid, timeout=30)
    assert r.elapsed < 10, f"stop took {r.elapsed:.1f}s: SIGTERM did not reach the workload"
    assert p.inspect(cid, "{{.State.Status}}") == "exited"
    assert p.inspect(cid, "{{.State.ExitCode}}") == "7"
    assert any(line.startswith("term ") for line in p("logs", cid).out.splitlines()), \
        p("logs", cid).out[-300:]
    p("rm", cid)
    assert_nothing_left(p, rt, cid)


def template_ready(rt, cid, snap):
    rows = [r for r in json.loads(rt("snapshots", "--format", "json", cid).out) if r["id"] == snap]
    assert len(rows) == 1, rows
    return rows[0]["template"]


def rollback_twice(t, warm):
    """Two rollbacks to the same snapshot in a row, warm (from a ready template) or cold (the
    container allows no templates: CRIU restores the processes, reconnecting conmon's pipes);
    after each, podman's view holds and the restored workload's output reaches podman logs."""
    p = snap_podman(t)
    cid = run_snap(p, annotations=() if warm else ("--annotation", "io.deltabox.templates=0"))
    rt = podman_rt(t, p, cid)
    pid = p.inspect(cid, "{{.State.Pid}}")
    p("exec", cid, "sh", "-c", "echo one > /state/file")
    snap = snapshot(rt, cid, "one")
    for i in range(2):
        p("exec", cid, "sh", "-c", f"echo two-{i} > /state/file; echo two-{i} > /state/marker")
        if warm:
            util.wait_for(lambda: template_ready(rt, cid, snap), timeout=20, what="the template")
        else:
            assert not template_ready(rt, cid, snap)
        util.wait_for(lambda: any(m == f"two-{i}" for _, m in ticks(p, cid)), what="ticks")
        rt("rollback", cid, snap, timeout=60)
        assert ps_entry(p, cid)["State"] == "running"
        assert p.inspect(cid, "{{.State.Pid}}") == pid
        assert p("exec", cid, "cat", "/state/file", "/state/marker").out == "one\nstart\n"
        r = p("exec", cid, "sh", "-c", "exit 5", check=False)
        assert r.rc == 5, r
        p("exec", cid, "sh", "-c", f"echo after-{i} > /state/marker")
        util.wait_for(lambda: any(m == f"after-{i}" for _, m in ticks(p, cid)),
                      what=f"output after rollback {i + 1} in podman logs")
    r = p("stop", "--time", "10", cid, timeout=30)
    assert r.elapsed < 10, f"stop took {r.elapsed:.1f}s: SIGTERM did not reach the workload"
    assert p.inspect(cid, "{{.State.ExitCode}}") == "7"
    p("rm", cid)
    assert_nothing_left(p, rt, cid)


def test_podman_warm_rollback_twice(t):
    rollback_twice(t, warm=True)


def test_podman_cold_rollback_twice(t):
    rollback_twice(t, warm=False)


# ---------------------------------------------------------------- rm -f

def test_podman_rm_force_with_snapshots(t):
    """`podman rm -f` of running snapshot-enabled containers that have snapshots (and so a
    helper, templates, rolled-back generations): one that stops on SIGTERM, one that needs
    SIGKILL. Nothing of either is left."""
    p = snap_podman(t)
    term = run_snap(p)
    kill = run_snap(p, WORKLOAD_NO_TERM)
    rts = {}
    for cid in (term, kill):
        rt = rts[cid] = podman_rt(t, p, cid)
        first = snapshot(rt, cid, "first")
        p("exec", cid, "sh", "-c", "echo x > /file")
        snapshot(rt, cid, "second")
        rt("rollback", cid, first, timeout=60)
        assert len(json.loads(rt("snapshots", "--format", "json", cid).out)) == 2
        assert cgroup_dirs_named(f"deltabox-helper-{cid}"), "no helper"
        util.wait_for(lambda c=cid, r=rt: any(
            row["template"] for row in json.loads(r("snapshots", "--format", "json", c).out)),
            timeout=20, what="a template waiting beside the live generation")

    r = p("rm", "-f", term, timeout=30)
    assert term in r.out and r.elapsed < 10, r
    r = p("rm", "-f", "--time", "0", kill, timeout=30)
    assert kill in r.out, r
    for cid in (term, kill):
        assert_nothing_left(p, rts[cid], cid)
