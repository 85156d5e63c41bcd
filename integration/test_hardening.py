"""Hardening: known container-breakout classes, each attacked from a malicious container.

Every test here is an attack that succeeds against a runtime with the hole; where that is not
obvious a control case shows the check can see the breach (a check that can never fail proves
nothing). The attacker is `probe`, a static C program (lib/hardening.py) copied into the rootfs.

  CVE-2019-5736   overwrite of the runtime binary through /proc/<pid>/exe. Attacks are made on a
                  COPY of the runtime binary (run through a Runtime wrapper of the copy), so a
                  successful attack never damages the build.
  CVE-2024-21626  host fds leaked into the container; process.cwd = /proc/self/fd/N.
  symlinks        mount destinations, maskedPaths and readonlyPaths that are symlinks pointing
                  out of the rootfs (static, and raced while `run` sets up the mounts).
  /proc, /sys     an image whose /proc or /sys is a symlink or a file (CVE-2019-19921 class), or
                  carries fake content.
  privileges      setuid binaries under noNewPrivileges; the bounding set on exec.
"""
import ctypes
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time

from lib import util
from lib.hardening import install_probe, runtime_copy, sha256
from lib.runtime import Runtime


def _own_bounding():
    for ln in util.read_file("/proc/self/status").splitlines():
        if ln.startswith("CapBnd:"):
            return int(ln.split()[1], 16)
    return 0


# "privileged": every capability the harness itself holds (a host may lack some)
ALL_CAPS = [c for c in sorted(util.CAPS, key=util.CAPS.get)
            if _own_bounding() >> util.CAPS[c] & 1]
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572


# =============================================================== CVE-2019-5736: /proc/<pid>/exe

def _use_runtime_copy(t):
    """Point t.rt at a copy of the runtime under test (its calls still show in failure reports);
    cleanup keeps using the real binary, which works even if the copy was destroyed."""
    real = t.rt
    path = runtime_copy(t)
    st = os.stat(path)
    t.rt = Runtime(path, t.root, tmpdir=t.tmp)
    return real, path, sha256(path), (st.st_dev, st.st_ino)


def _attacker_bundle(t, name, privileged, args=None, snapshots=False):
    ctl = t.path(f"{name}-ctl")
    os.mkdir(ctl)
    b = t.bundle(name, args=args or ["/probe", "attack", "/ctl"])
    install_probe(t, b)
    b.add_mount("/ctl", "bind", ctl, ["rbind", "rw"])
    if privileged:
        b.set_caps(ALL_CAPS)
    if snapshots:
        b.config.setdefault("annotations", {})["io.deltabox.snapshots"] = "true"
        b.writable()
    b.write()
    return b, ctl


def _start_detached(t, real, cid, b):
    t.defer(real.cleanup, cid)
    # plain files (not the harness' O_TMPFILE temporaries): CRIU must be able to reopen them
    with open(t.path(f"{cid}.out"), "w") as out:
        t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def _attack_log(ctl):
    return util.read_file(os.path.join(ctl, "log"), "")


def _observations(ctl):
    """Runtime processes the attacker caught in the container: refused (non-dumpable) or opened."""
    return len(re.findall(r"^(?:DENIED|HANDLE) ", _attack_log(ctl), re.M))


def _stop_attack(ctl):
    with open(os.path.join(ctl, "stop"), "w"):
        pass
    util.wait_for(lambda: os.path.exists(os.path.join(ctl, "report")), timeout=15,
                  what="the attacker's report")
    return util.read_file(os.path.join(ctl, "report")).strip(), _attack_log(ctl)


def _changed(path, st0):
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns) != st0


def _assert_binary_safe(path, digest, ident, log, report, what):
    print(f"{what}: attacker report: {report}")
    print(log[-3000:])
    lines = log.splitlines()
    handles = [ln for ln in lines if ln.startswith("HANDLE ")]
    ours = [ln for ln in handles if f" dev={ident[0]} ino={ident[1]} " in ln]
    excerpt = "\n".join(handles[:4]
                        + [ln for ln in lines if ln.startswith(("WROTE", "WRITE-FAILED"))][:4]
                        + [ln for ln in lines if ln.startswith("HELD-NOT-WRITABLE")][:2])
    assert sha256(path) == digest, (
        f"{what}: the runtime binary was overwritten from inside the container "
        f"(CVE-2019-5736). attacker report: {report}\n{excerpt}")
    assert not ours, (
        f"{what}: a container process opened /proc/<pid>/exe of a runtime process and got the "
        f"host runtime binary itself (dev={ident[0]} ino={ident[1]}); only timing kept it from "
        f"being written. attacker report: {report}\n{excerpt}")


def _exec_race(t, privileged, name):
    real, path, digest, ident = _use_runtime_copy(t)
    b, ctl = _attacker_bundle(t, name, privileged)
    cid = t.id(name)
    _start_detached(t, real, cid, b)
    util.wait_for(lambda: _attack_log(ctl).startswith("START"), what="the attacker to start")
    st0 = (os.stat(path).st_size, os.stat(path).st_mtime_ns)
    rounds = 0
    # at least 30 exec rounds; more until the attacker has caught runtime processes a few times
    while rounds < 30 or (_observations(ctl) < 5 and rounds < 300):
        rounds += 1
        t.rt.exec(cid, "true", timeout=30)
        if _changed(path, st0):
            break
    time.sleep(0.2)  # the last `exec` has exited: the binary is idle, a held handle can write
    report, log = _stop_attack(ctl)
    _assert_binary_safe(path, digest, ident, log, report, f"{rounds} exec rounds")
    # control: the attacker was fast enough to catch the runtime inside the container, so a
    # runtime that exposes its binary there would have been caught too
    assert _observations(ctl) > 0, (
        f"the attacker never caught a runtime process in {rounds} exec rounds: the test "
        f"proved nothing ({report})")


def test_cve_2019_5736_exec_race(t):
    """Default capabilities: while `exec` joins the container, the attacker grabs
    /proc/<pid>/exe of every new process and writes to it once the runtime has exited.
    A runtime whose process is dumpable while it still runs the runtime binary inside the
    container fails here (the privileged variant below shows the attacker does overwrite the
    binary whenever it can open it); the final assertion checks the attacker did catch runtime
    processes (refused or opened), i.e. that it was fast enough to matter."""
    _exec_race(t, privileged=False, name="unpriv")


def test_cve_2019_5736_exec_race_privileged(t):
    """All capabilities (CAP_SYS_PTRACE lets the attacker open /proc/<pid>/exe even of a
    non-dumpable process): PR_SET_DUMPABLE alone does not protect the binary, what the
    container can reach through /proc/<pid>/exe must not be the host's runtime binary."""
    _exec_race(t, privileged=True, name="priv")


def _created_init_attack(t, privileged, name):
    """A created container's init is a runtime process waiting for `start`, and it is pid 1 of
    the container: a process exec'd into the created container opens /proc/1/exe, then `start`
    makes the init exec the user's program, after which the binary is idle and writable."""
    real, path, digest, ident = _use_runtime_copy(t)
    b, ctl = _attacker_bundle(t, name, privileged, args=["sleep", "1000"])
    cid = t.id(name)
    t.defer(real.cleanup, cid)
    t.rt.create(cid, b, stdin=subprocess.DEVNULL)
    r = t.rt.exec(cid, "/probe", "attack", "/ctl", detach=True)
    assert r.rc == 0, r
    util.wait_for(lambda: re.search(r"^(DENIED|HANDLE) pid=1 ", _attack_log(ctl), re.M),
                  what="the attacker to look at pid 1 (the waiting init)")
    t.rt.start(cid)
    time.sleep(0.5)  # the init has exec'd sleep, `start` has exited: the binary is idle
    report, log = _stop_attack(ctl)
    _assert_binary_safe(path, digest, ident, log, report, "exec into a created container")


def test_cve_2019_5736_created_container_init(t):
    """Default capabilities: only a non-dumpable init (or one whose exe is not the host
    binary, as runc's memfd copy) keeps /proc/1/exe closed to the container."""
    _created_init_attack(t, privileged=False, name="unpriv")


def test_cve_2019_5736_created_container_init_privileged(t):
    """With CAP_SYS_PTRACE non-dumpable is not enough: the exe must not be the host binary."""
    _created_init_attack(t, privileged=True, name="priv")


def _scan(t, cid):
    r = t.rt.exec(cid, "/probe", "scan", timeout=30)
    assert r.rc == 0, r
    procs = []
    for ln in r.out.splitlines():
        m = re.fullmatch(r"(\d+) (.*) (\d+) (\S+)", ln)
        assert m, ln
        procs.append((int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)))
    return procs


def _stat_start(pid):
    stat = util.read_file(f"/proc/{pid}/stat")
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    return comm, int(stat[stat.rindex(")") + 2:].split()[19])


def test_cve_2019_5736_snapshot_anchor(t):
    """A snapshot-enabled container's init is the deltabox anchor, which never execs: its
    /proc/<pid>/exe is the runtime binary for the container's whole life. The container must
    not see it in /proc (the workload runs in a nested pid namespace), nor open its exe; and the
    exec race must not reach the binary either (privileged attacker)."""
    t.only_deltabox("snapshots are a deltabox feature")
    real, path, digest, ident = _use_runtime_copy(t)
    b, ctl = _attacker_bundle(t, "snap", True, snapshots=True)
    cid = t.id("snap")
    _start_detached(t, real, cid, b)
    util.wait_for(lambda: _attack_log(ctl).startswith("START"), what="the attacker to start")
    anchor = t.rt.state(cid)["pid"]
    ast = os.stat(f"/proc/{anchor}/exe")  # the copy, or whatever the runtime runs it from
    anchor_exe = f"{ast.st_dev}:{ast.st_ino}"
    a_comm, a_start = _stat_start(anchor)
    st0 = (os.stat(path).st_size, os.stat(path).st_mtime_ns)
    rounds = 0
    while rounds < 30 or (_observations(ctl) < 5 and rounds < 300):
        rounds += 1
        t.rt.exec(cid, "true", timeout=30)
        if _changed(path, st0):
            break
    procs = _scan(t, cid)
    time.sleep(0.2)
    report, log = _stop_attack(ctl)
    assert _observations(ctl) > 0, f"the attacker never caught a runtime process ({report})"
    seen = [p for p in procs if (p[1], p[2]) == (a_comm, a_start)]
    assert not seen, f"the anchor (host pid {anchor}) is visible in the container: {procs}"
    exes = [p for p in procs if p[3] in (f"{ident[0]}:{ident[1]}", anchor_exe)]
    assert not exes, f"the container opened the runtime binary or the anchor's exe: {exes}"
    strangers = [p for p in procs if p[1] != "probe"]
    assert not strangers, f"processes other than the container's own are visible: {procs}"
    _assert_binary_safe(path, digest, ident, log, report, f"snapshot container, {rounds} execs")


# =============================================================== CVE-2024-21626: fds and cwd

def _host_fds(t):
    """fds the caller of the runtime holds on host paths: a directory and a file."""
    d = t.path("host-secret-dir")
    os.makedirs(d, exist_ok=True)
    f = t.path("host-secret-file")
    with open(f, "w") as fh:
        fh.write("HOST-SECRET\n")
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    ffd = os.open(f, os.O_RDONLY | os.O_CLOEXEC)
    t.defer(os.close, dfd)
    t.defer(os.close, ffd)
    return d, dfd, f, ffd


def _parse_fds(out):
    res = {}
    for ln in out.splitlines():
        n, _, target = ln.partition(" ")
        res[int(n)] = target
    return res


def _probe_bundle(t, name=None, args=()):
    b = t.bundle(name, args=["/probe"] + list(args))
    install_probe(t, b)
    return b


def _assert_only_stdio(r, what, allowed=(0, 1, 2)):
    assert r.rc == 0, r
    fds = _parse_fds(r.out)
    assert sorted(fds) == sorted(allowed), f"{what}: the container process holds fds {fds}"


def test_no_host_fds_in_run(t):
    """fds the runtime inherits (or opens itself: rootfs, cgroup, state dirs, sockets) do not
    reach the container's process, whether --preserve-fds is absent or 0. Control: fds passed on
    purpose with --preserve-fds show up, as host paths, so the probe does see such fds."""
    d, dfd, f, ffd = _host_fds(t)
    passed = {3: dfd, 4: ffd, 7: dfd, 12: ffd}
    b = _probe_bundle(t, args=["fds"]).write()
    for preserve in (None, 0):
        r = t.rt.run(t.id(f"p{preserve}"), b, fds=passed, preserve_fds=preserve)
        _assert_only_stdio(r, f"run, --preserve-fds {preserve}")
    r = t.rt.run(t.id("p2"), b, fds=passed, preserve_fds=2)
    assert r.rc == 0, r
    fds = _parse_fds(r.out)
    assert sorted(fds) == [0, 1, 2, 3, 4] and fds[3] == d and fds[4] == f, fds


def test_no_host_fds_in_create_start(t):
    """The create/start path: the init waits in the container for `start`, then execs."""
    _, dfd, _, ffd = _host_fds(t)
    b = _probe_bundle(t, args=["fds"]).write()
    for preserve in (None, 0):
        cid = t.id(f"p{preserve}")
        t.defer(t.rt.cleanup, cid)
        outp = t.path(f"{cid}.out")
        with open(outp, "w") as out:
            t.rt.create(cid, b, fds={3: dfd, 5: ffd, 9: dfd}, preserve_fds=preserve,
                        stdin=subprocess.DEVNULL, stdout=out)
        t.rt.start(cid, fds={3: dfd, 6: ffd})
        util.wait_for(lambda: t.rt.status(cid) == "stopped", what="the container to exit")
        fds = _parse_fds(util.read_file(outp))
        assert sorted(fds) == [0, 1, 2], f"create/start, --preserve-fds {preserve}: {fds}"
        t.rt.delete(cid)


def test_no_host_fds_in_exec(t):
    d, dfd, f, ffd = _host_fds(t)
    b = _probe_bundle(t, args=["fds"])
    b.set_args("sleep", "1000")
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    passed = {3: dfd, 4: ffd, 8: dfd}
    for preserve in (None, 0):
        r = t.rt.exec(cid, "/probe", "fds", fds=passed, preserve_fds=preserve)
        _assert_only_stdio(r, f"exec, --preserve-fds {preserve}")
    r = t.rt.exec(cid, "/probe", "fds", fds=passed, preserve_fds=1)
    assert r.rc == 0, r
    fds = _parse_fds(r.out)
    assert sorted(fds) == [0, 1, 2, 3] and fds[3] == d, fds


def _marker(t):
    m = t.path("HOST-MARKER")
    with open(m, "w") as f:
        f.write(f"HOST-{secrets.token_hex(4)}\n")
    return m


def _verdict(r):
    """'escaped', 'inside' or 'refused' for a `probe where` run."""
    if "ESCAPED" in r.out or "marker-reached" in r.out or "(unreachable)" in r.out:
        return "escaped"
    if r.rc == 0:
        assert r.out.rstrip().endswith("INSIDE"), r
        return "inside"
    return "refused"


def test_where_probe_control(t):
    """Control for the cwd tests: a process whose cwd is a host directory outside its root (what
    a leaked fd gives after chdir("/proc/self/fd/N")) is reported ESCAPED by the probe."""
    marker = _marker(t)
    b = _probe_bundle(t)
    hostfd = os.open(t.tmp, os.O_RDONLY | os.O_DIRECTORY)
    t.defer(os.close, hostfd)

    def pre():
        os.chroot(b.rootfs)
        os.fchdir(hostfd)

    r = subprocess.run(["/probe", "where", marker], preexec_fn=pre, pass_fds=(hostfd,),
                       capture_output=True, text=True, timeout=30)
    assert "ESCAPED" in r.stdout and "marker-reached" in r.stdout, r
    assert "(unreachable)" in r.stdout, r


CWD_FDS = range(3, 16)


def test_cwd_proc_self_fd_run(t):
    """CVE-2024-21626: process.cwd = /proc/self/fd/N. If N is an fd the runtime still holds on a
    host directory when it chdirs (runc < 1.1.12 leaked a cgroup fd as 7 or 8), the process
    starts with its cwd on the host: `../../..` then walks the host's filesystem. Each N must
    fail to start or land inside the container. Some N are also handed to the runtime by its
    caller (not preserved)."""
    marker = _marker(t)
    b = _probe_bundle(t, args=["where", marker])
    hostfd = os.open(t.tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    t.defer(os.close, hostfd)
    results = {}
    for n in CWD_FDS:
        b.process["cwd"] = f"/proc/self/fd/{n}"
        b.write()
        cid = t.id(f"fd{n}")
        t.defer(t.rt.cleanup, cid)
        r = t.rt.run(cid, b, fds={n: hostfd} if n in (5, 9, 13) else None)
        results[n] = (_verdict(r), r)
    escaped = {n: v[1] for n, v in results.items() if v[0] == "escaped"}
    assert not escaped, f"cwd outside the container for fds {sorted(escaped)}: {escaped}"


def test_cwd_proc_self_fd_exec(t):
    """The same through `exec --cwd /proc/self/fd/N`."""
    marker = _marker(t)
    b = _probe_bundle(t)
    b.set_args("sleep", "1000")
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    hostfd = os.open(t.tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    t.defer(os.close, hostfd)
    escaped = {}
    for n in CWD_FDS:
        r = t.rt.exec(cid, "/probe", "where", marker, cwd=f"/proc/self/fd/{n}",
                      fds={n: hostfd} if n in (5, 9, 13) else None)
        if _verdict(r) == "escaped":
            escaped[n] = r
    assert not escaped, f"exec cwd outside the container for fds {sorted(escaped)}: {escaped}"


def test_cwd_image_symlink_to_proc_self_fd(t):
    """The image's working directory is a symlink to /proc/self/fd/N (the CVE's attack from a
    malicious image, which controls the rootfs but not the config)."""
    marker = _marker(t)
    b = _probe_bundle(t, args=["where", marker])
    b.process["cwd"] = "/work"
    escaped = {}
    for n in CWD_FDS:
        link = b.file("work")
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(f"/proc/self/fd/{n}", link)
        b.write()
        cid = t.id(f"fd{n}")
        t.defer(t.rt.cleanup, cid)
        r = t.rt.run(cid, b)
        if _verdict(r) == "escaped":
            escaped[n] = r
    assert not escaped, f"cwd outside the container for fds {sorted(escaped)}: {escaped}"



def test_cwd_through_inherited_host_fd_refused(t):
    """Defence in depth from the CVE-2024-21626 fix (runc 1.1.12, backported to Debian's
    1.1.5+ds1-1+deb12u1): after chdir the runtime checks that the cwd is inside the container's
    root, and refuses to start the process otherwise. Here the fd that reaches the host is one
    the caller hands over with --preserve-fds (the image only names /proc/self/fd/3 as its
    working directory, directly or through a symlink): without the check any fd leak, by this
    route or a future runtime bug, is the CVE again. This is also the control for the cwd
    tests above: a runtime without the check lets the probe reach the host here."""
    marker = _marker(t)
    b = _probe_bundle(t, args=["where", marker])
    os.symlink("/proc/self/fd/3", b.file("work"))
    hostfd = os.open(t.tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    t.defer(os.close, hostfd)
    escaped = {}
    for cwd in ("/proc/self/fd/3", "/work"):
        b.process["cwd"] = cwd
        b.write()
        cid = t.id(cwd.replace("/", "-").strip("-"))
        t.defer(t.rt.cleanup, cid)
        r = t.rt.run(cid, b, fds={3: hostfd}, preserve_fds=1)
        if _verdict(r) == "escaped":
            escaped[f"run cwd={cwd}"] = r
    b.set_args("sleep", "1000")
    b.process["cwd"] = "/"
    b.write()
    cid = t.id("exec")
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    for cwd in ("/proc/self/fd/3", "/work"):
        r = t.rt.exec(cid, "/probe", "where", marker, cwd=cwd, fds={3: hostfd}, preserve_fds=1)
        if _verdict(r) == "escaped":
            escaped[f"exec --cwd {cwd}"] = r
    assert not escaped, ("the process started with its cwd on the host: "
                         + "; ".join(f"{k}: {v.out!r}" for k, v in escaped.items()))


# =============================================================== symlinks on mount targets
#
# A mount destination is resolved inside the rootfs, which the image controls. A runtime that
# builds the host path as rootfs + destination and lets the kernel follow the image's symlinks
# mounts (and first creates the missing destination) on the host. What shows on each side:
#  - a destination missing on the host is created there (mkdir/creat through the symlink):
#    the host-side victim directory must stay empty;
#  - a mount made outside the rootfs lands in the container's mount namespace before pivot_root
#    and is gone with the old root afterwards: inside, the mount must be visible where the
#    symlink resolves *within* the rootfs.

def _symlink_cases(t, b, kind):
    """Plant the symlinks; return [(name, destination, path inside the container)]."""
    v = t.path("victims")
    os.makedirs(v, exist_ok=True)
    existing = t.path(f"host-existing-{kind}")  # a host path with content (think /etc)
    if kind == "file":
        with open(existing, "w") as f:
            f.write("HOST-EXISTING\n")
    else:
        os.makedirs(existing)
        with open(os.path.join(existing, "passwd"), "w") as f:
            f.write("HOST-EXISTING\n")
    os.symlink("/", b.file("l-root"))
    os.symlink("../../../../../../../../../../..", b.file("l-up"))
    os.symlink(f"{v}/{kind}-abs", b.file("l-abs"))
    os.symlink(existing, b.file("l-existing"))
    return [("symlink to /", f"/l-root{v}/{kind}-root", f"{v}/{kind}-root"),
            ("symlink to ../../..", f"/l-up{v}/{kind}-up", f"{v}/{kind}-up"),
            ("absolute symlink to a missing host path", "/l-abs", f"{v}/{kind}-abs"),
            ("absolute symlink to an existing host path", "/l-existing", existing)]


def _host_unchanged(t, kind):
    v = t.path("victims")
    assert os.listdir(v) == [], f"created on the host through a symlink: {os.listdir(v)}"
    existing = t.path(f"host-existing-{kind}")
    if kind == "file":
        assert util.read_file(existing) == "HOST-EXISTING\n"
    else:
        assert os.listdir(existing) == ["passwd"], os.listdir(existing)
        assert util.read_file(os.path.join(existing, "passwd")) == "HOST-EXISTING\n"
    assert not util.mounts_under(v) and not util.mounts_under(existing)


def test_symlink_cases_escape_when_followed_on_host(t):
    """Control for the symlink tests: each planted symlink really leads out of the rootfs when
    the host path rootfs + destination is resolved on the host (what a naive runtime does, e.g.
    EvalSymlinks + MkdirAll): the victims are created on the host, the existing host path is
    reached, and the host checks of the tests above see it."""
    b = t.bundle()
    cases = _symlink_cases(t, b, "dir")
    for name, dest, inside in cases:
        naive = os.path.realpath(b.rootfs + dest)
        assert naive == inside, (name, naive)
        os.makedirs(naive, exist_ok=True)
    assert sorted(os.listdir(t.path("victims"))) == ["dir-abs", "dir-root", "dir-up"]
    try:
        _host_unchanged(t, "dir")
    except AssertionError:
        pass
    else:
        raise AssertionError("control: _host_unchanged did not notice the escape")


def _container_mounts(out):
    res = {}
    for ln in out.splitlines():
        left, sep, right = ln.partition(" - ")
        if sep:
            res[util._unescape(left.split()[4])] = right.split()[0]
    return res


def test_symlink_mount_target_bind_dir(t):
    src = t.path("src")
    os.mkdir(src)
    with open(os.path.join(src, "from-source"), "w") as f:
        f.write("BIND-SOURCE\n")
    b = t.bundle()
    cases = _symlink_cases(t, b, "dir")
    script = "".join(f"echo {i}=$(cat '{inside}/from-source'); " for i, (_, _, inside)
                     in enumerate(cases))
    b.sh(script)
    for _, dest, _ in cases:
        b.add_mount(dest, "bind", src, ["rbind"])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    _host_unchanged(t, "dir")
    assert r.rc == 0, r
    for i, (name, dest, inside) in enumerate(cases):
        assert f"{i}=BIND-SOURCE\n" in r.out, (
            f"{name}: bind mount on {dest} not visible at {inside} in the container: {r!r}")


def test_symlink_mount_target_bind_file(t):
    src = t.path("srcfile")
    with open(src, "w") as f:
        f.write("BIND-FILE\n")
    b = t.bundle()
    cases = _symlink_cases(t, b, "file")
    b.sh("".join(f"echo {i}=$(cat '{inside}'); " for i, (_, _, inside) in enumerate(cases)))
    for _, dest, _ in cases:
        b.add_mount(dest, "bind", src, ["bind"])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    _host_unchanged(t, "file")
    assert r.rc == 0, r
    for i, (name, dest, inside) in enumerate(cases):
        assert f"{i}=BIND-FILE\n" in r.out, (
            f"{name}: bind mount on {dest} not visible at {inside} in the container: {r!r}")


def test_symlink_mount_target_tmpfs(t):
    b = t.bundle(args=["cat", "/proc/self/mountinfo"])
    cases = _symlink_cases(t, b, "dir")
    for _, dest, _ in cases:
        b.add_mount(dest, "tmpfs", "tmpfs", ["size=1m"])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    _host_unchanged(t, "dir")
    assert r.rc == 0, r
    mounts = _container_mounts(r.out)
    for name, dest, inside in cases:
        assert mounts.get(inside) == "tmpfs", (
            f"{name}: tmpfs on {dest} not mounted at {inside} in the container: {mounts}")


def test_symlink_masked_and_readonly_paths(t):
    """maskedPaths/readonlyPaths entries that are symlinks to absolute host paths: the symlink
    is followed inside the rootfs (as runc does: it masks after pivot_root, where the kernel
    resolves the link against the container's root). The host's files stay untouched and are
    not what the container sees; the image's files at the resolved paths are masked/read-only."""
    hdir, hfile, hro = t.path("h-secret-dir"), t.path("h-secret-file"), t.path("h-ro-dir")
    os.mkdir(hdir)
    os.mkdir(hro)
    with open(os.path.join(hdir, "secret"), "w") as f:
        f.write("HOST-SECRET\n")
    with open(hfile, "w") as f:
        f.write("HOST-FILE\n")
    b = t.bundle()
    b.file(hdir + "/secret", "IMAGE-SECRET\n")
    b.file(hfile, "IMAGE-FILE\n")
    os.makedirs(b.file(hro))
    os.symlink(hdir, b.file("m-dir"))
    os.symlink(hfile, b.file("m-file"))
    os.symlink(hro, b.file("r-dir"))
    b.linux["maskedPaths"] = b.linux["maskedPaths"] + ["/m-dir", "/m-file"]
    b.linux["readonlyPaths"] = b.linux["readonlyPaths"] + ["/r-dir"]
    b.sh(f"echo dir=$(cat {hdir}/secret /m-dir/secret 2>/dev/null); "
         f"echo file=$(cat {hfile} /m-file 2>/dev/null); "
         f"touch {hro}/x 2>/dev/null; echo ro=$?; touch /r-dir/y 2>/dev/null; echo ro2=$?")
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert util.read_file(os.path.join(hdir, "secret")) == "HOST-SECRET\n"
    assert os.listdir(hdir) == ["secret"] and os.listdir(hro) == []
    assert util.read_file(hfile) == "HOST-FILE\n"
    assert not any(util.mounts_under(p) for p in (hdir, hfile, hro))
    assert r.rc == 0, r
    assert "HOST-" not in r.out, f"host content visible in the container: {r!r}"
    assert r.out.split("\n")[:4] == ["dir=", "file=", "ro=1", "ro2=1"], (
        f"masked/readonly symlinks not applied where they resolve in the rootfs: {r!r}")


RENAME_EXCHANGE = 2


def test_symlink_race_mount_target(t):
    """TOCTOU: while `run` sets up its mounts, a host process keeps swapping a directory of the
    rootfs with a symlink to a host directory (renameat2 RENAME_EXCHANGE). A runtime that
    resolves the destination safely but then mounts/mkdirs by path string can be raced onto the
    host. Every attempt must either fail or put the mount inside the container; the host
    directory must stay empty. Bounded: 40 attempts.

    runc 1.1.5 fails this within a few attempts (it creates `newdir` in the host directory):
    that is CVE-2024-45310, fixed in runc 1.1.14, which Debian's 1.1.5+ds1-1+deb12u1 lacks."""
    t.runc_gap("CVE-2024-45310: runc < 1.1.14 can be raced into creating directories on the "
               "host (observed: this test fails against runc 1.1.5 within a few attempts)")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_uint]
    victim = t.path("race-victim")
    os.mkdir(victim)
    b = t.bundle(args=["cat", "/proc/self/mountinfo"])
    os.mkdir(b.file("race"))
    os.symlink(victim, b.file("race-alt"))
    os.makedirs(b.file(victim))  # so the symlink also resolves inside the rootfs
    b.add_mount("/race/newdir/sub", "tmpfs", "tmpfs", ["size=1m"])
    b.writable().write()
    a, c = b.file("race").encode(), b.file("race-alt").encode()
    stop = threading.Event()
    swaps = [0]

    def racer():
        while not stop.is_set():
            if libc.renameat2(-100, a, -100, c, RENAME_EXCHANGE) == 0:
                swaps[0] += 1

    th = threading.Thread(target=racer, daemon=True)
    th.start()
    ok = failed = 0
    bad = []
    try:
        for i in range(40):
            cid = t.id(f"r{i}")
            t.defer(t.rt.cleanup, cid)
            r = t.rt.run(cid, b)
            if r.rc != 0:
                failed += 1
                continue
            ok += 1
            mounts = _container_mounts(r.out)
            if not any(mp.endswith("/newdir/sub") and fs == "tmpfs" for mp, fs in mounts.items()):
                bad.append(r)
            if os.listdir(victim):
                break
    finally:
        stop.set()
        th.join()
    assert swaps[0] > 100, f"the racer hardly ran ({swaps[0]} swaps)"
    assert os.listdir(victim) == [], (
        f"the runtime created {os.listdir(victim)} in the host directory the symlink points to "
        f"({ok} runs succeeded, {failed} failed)")
    assert not bad, f"{len(bad)} runs started without the mount inside the container: {bad[0]!r}"


# =============================================================== /proc and /sys from the image

def _replace_with(b, rel, kind, target=None):
    p = b.file(rel)
    shutil.rmtree(p)
    if kind == "symlink":
        os.symlink(target, p)
    else:
        with open(p, "w") as f:
            f.write("not a directory\n")


def _refused_cases(t, rel, fstype):
    fake = f"/fake{rel}"
    host_target = t.path(f"host{rel}")
    cases = [("symlink into the rootfs", "symlink", fake),
             ("symlink to a host path", "symlink", host_target),
             ("relative symlink climbing out", "symlink", f"../../../../../../..{rel}"),
             ("regular file", "file", None)]
    for i, (name, kind, target) in enumerate(cases):
        b = t.bundle(f"b{i}", args=["sh", "-c", "echo STARTED"])
        os.makedirs(b.file(fake + "/self"))
        _replace_with(b, rel, kind, target)
        b.write()
        cid = t.id(f"c{i}")
        t.defer(t.rt.cleanup, cid)
        r = t.rt.run(cid, b)
        assert r.rc != 0 and "STARTED" not in r.out, f"{rel} as a {name}: not refused: {r!r}"
        assert "must be mounted on ordinary directory" in r.err, (
            f"{rel} as a {name}: refused, but not for the {fstype} destination: {r!r}")
        assert not os.path.lexists(host_target), f"{host_target} created on the host"
        assert os.listdir(b.file(fake)) == ["self"], os.listdir(b.file(fake))
        assert not util.mounts_under(b.rootfs), util.mounts_under(b.rootfs)


def test_proc_symlink_or_file_refused(t):
    """CVE-2019-19921 class: an image whose /proc is a symlink (or a file) gets no procfs
    mounted through it: the runtime refuses to start the container (runc: "filesystem "proc"
    must be mounted on ordinary directory")."""
    _refused_cases(t, "/proc", "proc")


def test_sys_symlink_or_file_refused(t):
    _refused_cases(t, "/sys", "sysfs")


def _masked_script(paths):
    """Shell lines reporting what each masked path is in the container."""
    return "".join(
        f"if [ -d {p} ]; then echo 'M {p} dir '$(ls -A {p} | wc -l); "
        f"elif [ -c {p} ]; then echo 'M {p} chr '$(stat -c %t:%T {p}); "
        f"elif [ -e {p} ]; then echo 'M {p} other'; else echo 'M {p} absent'; fi; "
        for p in paths)


def _check_masked(r, paths):
    """Each masked path that exists on the host (same kernel: the container's procfs and sysfs
    have the same entries) is an empty directory or /dev/null in the container."""
    got = {}
    for ln in r.out.splitlines():
        if ln.startswith("M "):
            _, p, rest = ln.split(" ", 2)
            got[p] = rest
    for p in paths:
        if not os.path.lexists(p):
            continue
        want = "dir 0" if os.path.isdir(p) else "chr 1:3"
        assert got.get(p) == want, f"{p} is not masked in the container ({got.get(p)}): {r!r}"


def test_proc_fake_content_covered(t):
    """An image with its own content under /proc (files, a fake self/, sys/, kcore): the
    container's /proc is a real procfs (statfs magic), none of the image's files show, masked
    paths are masked and /proc/sys is read-only."""
    b = _probe_bundle(t)
    for rel, content in (("proc/fakefile", "FAKE\n"), ("proc/kcore", "FAKE-KCORE\n"),
                         ("proc/timer_list", "FAKE-TIMERS\n"), ("proc/self/exe", "FAKE\n"),
                         ("proc/sys/kernel/domainname", "FAKE\n"), ("proc/keys", "FAKE\n"),
                         ("proc/acpi/fake", "FAKE\n")):
        b.file(rel, content)
    masked = [p for p in b.linux["maskedPaths"] if p.startswith("/proc/")]
    b.sh("/probe statfs /proc /proc/sys /proc/self; "
         "test -e /proc/fakefile && echo fakefile-visible; "
         "cat /proc/kcore /proc/timer_list /proc/keys 2>/dev/null | head -c 100; "
         "echo exe=$(readlink /proc/self/exe); "
         "echo x > /proc/sys/kernel/domainname 2>/dev/null; echo sysw=$?; "
         "grep -c FAKE /proc/sys/kernel/domainname; " + _masked_script(masked))
    b.set_caps(DEFAULT_CAPS + ["CAP_SYS_ADMIN"])  # so only the read-only mount stops the write
    b.write()
    r = t.rt.run(t.id(), b)
    lines = r.out.split("\n")
    magic = {ln.split()[0]: ln.split()[1] for ln in lines[:3]}
    assert magic == {p: f"{PROC_SUPER_MAGIC:x}" for p in ("/proc", "/proc/sys", "/proc/self")}, r
    assert "fakefile-visible" not in r.out and "FAKE" not in r.out, r
    assert "exe=/bin/busybox" in lines, r
    assert "sysw=1" in lines, f"/proc/sys writable: {r!r}"
    _check_masked(r, masked)


def test_sys_fake_content_covered(t):
    b = _probe_bundle(t)
    for rel in ("sys/fakefile", "sys/firmware/fake", "sys/kernel/fake", "sys/fs/cgroup/fake"):
        b.file(rel, "FAKE\n")
    masked = [p for p in b.linux["maskedPaths"] if p.startswith("/sys/")]
    b.sh("/probe statfs /sys /sys/kernel; "
         "test -e /sys/fakefile && echo fake-visible; test -e /sys/kernel/fake && echo fake2; "
         "test -d /sys/kernel/mm && echo real-sysfs; "
         "touch /sys/kernel/x 2>/dev/null; echo sysw=$?; " + _masked_script(masked))
    b.write()
    r = t.rt.run(t.id(), b)
    lines = r.out.split("\n")
    magic = {ln.split()[0]: ln.split()[1] for ln in lines[:2]}
    assert magic == {"/sys": f"{SYSFS_MAGIC:x}", "/sys/kernel": f"{SYSFS_MAGIC:x}"}, r
    assert "fake" not in r.out, r
    assert "real-sysfs" in lines and "sysw=1" in lines, r
    _check_masked(r, masked)


# =============================================================== privileges

def _caps(out):
    res = {}
    for ln in out.splitlines():
        if ln.startswith("Cap"):
            k, v = ln.split(":")
            res[k] = int(v, 16)
        elif ln.startswith("uid="):
            u, g = ln.split()
            res["uid"] = tuple(int(x) for x in u[4:].split(","))
            res["gid"] = tuple(int(x) for x in g[4:].split(","))
        elif ln.startswith("NoNewPrivs:"):
            res["nnp"] = int(ln.split()[1])
    return res


def _suid_bundle(t, name, nnp, args=None):
    b = t.bundle(name)
    install_probe(t, b, "suid", mode=0o4755)
    b.set_args(*(args or ["/suid", "ids"]))
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.process["noNewPrivileges"] = nnp
    return b.write()


def test_no_new_privileges_setuid(t):
    """A setuid-root binary in the rootfs, run as uid 1000 with noNewPrivileges: no uid change,
    no capabilities. Control (noNewPrivileges=false): the same binary does become root, so the
    setuid bit works on this rootfs; and even then its capabilities stop at the bounding set."""
    bset = util.cap_mask(DEFAULT_CAPS)
    r = t.rt.run(t.id("nnp"), _suid_bundle(t, "nnp", True))
    assert r.rc == 0, r
    c = _caps(r.out)
    assert c["uid"] == (1000, 1000, 1000) and c["gid"] == (1000, 1000, 1000), r
    assert c["CapEff"] == c["CapPrm"] == 0 and c["nnp"] == 1, r
    r = t.rt.run(t.id("ctl"), _suid_bundle(t, "ctl", False))
    assert r.rc == 0, r
    c = _caps(r.out)
    assert c["uid"] == (1000, 0, 0), f"control: the setuid bit had no effect: {r!r}"
    assert c["CapBnd"] == bset and c["CapEff"] & ~bset == 0 and c["CapPrm"] & ~bset == 0, (
        f"setuid root got capabilities beyond the bounding set: {r!r}")


def test_no_new_privileges_setuid_exec(t):
    """exec: noNewPrivileges from the config holds for exec'd processes; --no-new-privs adds it
    where the config has none. Control: without either the setuid bit works."""
    b = _suid_bundle(t, "nnp", True, args=["sleep", "1000"])
    cid = t.id("nnp")
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    r = t.rt.exec(cid, "/suid", "ids")
    c = _caps(r.out)
    assert r.rc == 0 and c["uid"] == (1000, 1000, 1000) and c["CapEff"] == 0, r
    b = _suid_bundle(t, "open", False, args=["sleep", "1000"])
    cid = t.id("open")
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    r = t.rt.exec(cid, "/suid", "ids", no_new_privs=True)
    c = _caps(r.out)
    assert r.rc == 0 and c["uid"] == (1000, 1000, 1000) and c["CapEff"] == 0, r
    r = t.rt.exec(cid, "/suid", "ids")
    c = _caps(r.out)
    assert r.rc == 0 and c["uid"] == (1000, 0, 0), f"control: setuid had no effect: {r!r}"
    assert c["CapEff"] & ~util.cap_mask(DEFAULT_CAPS) == 0, r


def test_exec_bounding_set(t):
    """The runtime runs with every capability; exec'd processes must not: without --cap the
    exec'd process has the container's bounding set, and nothing beyond it in any set, as root,
    through a setuid binary, and from a process.json that names no capabilities."""
    own = _own_bounding()
    bset = util.cap_mask(DEFAULT_CAPS)
    assert own & ~bset, "control: the runtime's own bounding set is not larger than the config's"
    b = t.bundle(args=["sleep", "1000"])
    install_probe(t, b)
    install_probe(t, b, "suid", mode=0o4755)
    b.process["noNewPrivileges"] = False
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    init = util.proc_status(t.rt.state(cid)["pid"])
    assert int(init["CapBnd"], 16) == bset, init["CapBnd"]

    def check(r, what, exact=True):
        assert r.rc == 0, r
        c = _caps(r.out)
        if exact:
            assert c["CapBnd"] == bset, f"{what}: bounding set {c['CapBnd']:#x}, want {bset:#x}"
        for k in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert c[k] & ~bset == 0, f"{what}: {k}={c[k]:#x} beyond the bounding set {bset:#x}"

    check(t.rt.exec(cid, "/probe", "ids"), "exec as root")
    check(t.rt.exec(cid, "/suid", "ids", user="1000:1000"), "exec of a setuid binary")
    p = t.path("process.json")
    with open(p, "w") as f:
        json.dump({"args": ["/probe", "ids"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                   "env": ["PATH=/bin"]}, f)
    check(t.rt.exec(cid, process=p), "exec --process without capabilities", exact=False)

