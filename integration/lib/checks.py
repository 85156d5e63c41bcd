"""Assertions shared by the tests."""
import datetime
import json
import os
import re

from . import util

CG = util.CGROUP_ROOT

# key order of `state` and `list --format json` (annotations, when present, go before owner)
STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]


def parse_created(s):
    """RFC3339Nano in UTC (Go's time.RFC3339Nano: trailing zeros of the fraction trimmed)
    -> seconds since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z", s)
    assert m, f"created is not RFC3339Nano UTC: {s!r}"
    assert not (m.group(2) or "").endswith("0"), f"trailing zeros in the fraction: {s!r}"
    dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    return dt.timestamp() + (float(m.group(2)) if m.group(2) else 0.0)


def assert_error(r, rc, *needles):
    """r failed with exit code rc and its stderr contains every needle."""
    assert r.rc == rc, f"expected exit {rc}, got {r.rc}: {r!r}"
    msgs = log_messages(r)
    for n in needles:
        assert n in r.err or any(n in m for m in msgs), f"expected {n!r} in stderr: {r!r}"


def assert_ok(r):
    assert r.rc == 0, f"expected success: {r!r}"
    return r


def log_messages(r):
    """The `msg` of every logrus line in r.err (text or json format)."""
    msgs = []
    for line in r.err.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                msgs.append(json.loads(line).get("msg", ""))
                continue
            except ValueError:
                pass
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
        if m:
            msgs.append(m.group(1).encode().decode("unicode_escape"))
        elif line:
            msgs.append(line)
    return msgs


def cgroup_dirs_named(name):
    """Every cgroup dir (in any hierarchy, anywhere in the run) whose basename is name."""
    found = []
    for h in os.listdir(CG):
        hp = os.path.join(CG, h)
        if os.path.islink(hp) or not os.path.isdir(hp):
            continue
        for dirpath, dirnames, _ in os.walk(hp):
            for d in dirnames:
                if d == name:
                    found.append(os.path.join(dirpath, d))
    return found


def own_cgroup_pids(t):
    """pids in this test's cgroup other than the test process itself."""
    pids = set()
    for h in os.listdir(CG):
        p = os.path.join(CG, h, t.cgroup.lstrip("/"))
        if os.path.isdir(p) and not os.path.islink(os.path.join(CG, h)):
            pids |= util.cgroup_pids(p)
    pids.discard(os.getpid())
    return {p for p in pids if util.pid_alive(p)}


def assert_nothing_left(t, cid, bundle=None):
    """No state, state dir, cgroup, process or mount remains for container cid."""
    r = t.rt("state", cid, check=False)
    assert r.rc != 0 and "does not exist" in r.err, f"container {cid} still exists: {r!r}"
    left = os.listdir(t.root) if os.path.isdir(t.root) else []
    assert cid not in left, f"state dir {cid} left in --root: {left}"
    cgs = cgroup_dirs_named(cid)
    assert not cgs, f"cgroups left for {cid}: {cgs}"
    try:
        util.wait_for(lambda: not own_cgroup_pids(t), timeout=5, what="container processes to go")
    except AssertionError:
        raise AssertionError(f"processes left in the test's cgroup: {own_cgroup_pids(t)}") from None
    if bundle is not None:
        ms = util.mounts_under(getattr(bundle, "path", bundle))
        assert not ms, f"mounts left: {ms}"
    ms = util.mounts_under(t.tmp)
    assert not ms, f"mounts left below the test dir: {ms}"


def ns_inode(link):
    """'net:[4026531833]' -> 4026531833 (for a readlink of /proc/<pid>/ns/<x>)."""
    m = re.search(r"\[(\d+)\]", link)
    assert m, f"not a namespace link: {link!r}"
    return int(m.group(1))


def status_field(text, key):
    """Value of 'Key:\tvalue' in a /proc/<pid>/status text."""
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k == key:
            return v.strip()
    raise AssertionError(f"{key} not in status: {text!r}")
