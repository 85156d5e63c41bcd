"""create / start / run / state / list / kill / delete / ps."""
import json
import os
import re
import signal
import threading
import time

from lib import util
from lib.checks import (STATE_KEYS, assert_error, assert_nothing_left, own_cgroup_pids,
                        parse_created)


def sleeper(t, name=None, *args):
    b = t.bundle(name, args=list(args) or ["sleep", "1000"])
    return b.write()


def cmdline(pid):
    return util.read_file(f"/proc/{pid}/cmdline").replace("\0", " ").strip()


# ------------------------------------------------------------------ create / start

def test_create_start_states(t):
    b = sleeper(t)
    cid = t.id()
    before = time.time()
    t.rt.create(cid, b)
    try:
        st = t.rt.state(cid)
        assert st["status"] == "created", st
        pid = st["pid"]
        assert pid > 0 and util.pid_alive(pid), st
        assert "sleep" not in cmdline(pid), "the user process must not run before start"
        t.rt.start(cid)
        st2 = t.rt.state(cid)
        assert st2["status"] == "running", st2
        assert st2["pid"] == pid, (st, st2)
        util.wait_for(lambda: cmdline(pid) == "sleep 1000", what="init to exec the process")
        created = parse_created(st2["created"])
        assert before - 5 < created < time.time() + 5, st2["created"]
        assert st2["created"] == st["created"]
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_start_runs_process_that_exits(t):
    b = t.bundle(args=["sh", "-c", "exit 0"]).write()
    cid = t.id()
    t.rt.create(cid, b)
    t.rt.start(cid)
    util.wait_for(lambda: t.rt.status(cid) == "stopped", what="container to stop")
    st = t.rt.state(cid)
    assert st["pid"] == 0, st
    t.rt.delete(cid)
    assert_nothing_left(t, cid, b)


def test_create_output_goes_to_container_stdio(t):
    """create hands its stdio to the container: output written after start lands in the file
    the caller gave to create."""
    b = t.bundle(args=["sh", "-c", "echo to-out; echo to-err >&2"]).write()
    cid = t.id()
    with open(t.path("out"), "w+") as out, open(t.path("err"), "w+") as err:
        t.rt.create(cid, b, stdout=out, stderr=err)
        t.rt.start(cid)
        util.wait_for(lambda: t.rt.status(cid) == "stopped")
        t.rt.delete(cid)
    assert util.read_file(t.path("out")) == "to-out\n"
    assert util.read_file(t.path("err")) == "to-err\n"


def test_pid_file(t):
    b = sleeper(t)
    cid = t.id()
    pf = t.path("init.pid")
    try:
        t.rt.create(cid, b, pid_file=pf)
        st = t.rt.state(cid)
        content = util.read_file(pf)
        assert content == str(st["pid"]), f"pid file {content!r} vs state pid {st['pid']}"
        assert not content.endswith("\n")
    finally:
        t.rt.cleanup(cid)


def test_pid_file_relative_to_cwd(t):
    b = sleeper(t)
    cid = t.id()
    wd = t.path("wd")
    os.mkdir(wd)
    try:
        t.rt.create(cid, b, pid_file="rel.pid", cwd=wd)
        assert os.path.exists(os.path.join(wd, "rel.pid")), os.listdir(wd)
        assert util.read_file(os.path.join(wd, "rel.pid")) == str(t.rt.state(cid)["pid"])
        assert not os.path.exists(os.path.join(b.path, "rel.pid"))
    finally:
        t.rt.cleanup(cid)


def test_bundle_defaults_to_cwd(t):
    b = t.bundle(args=["sh", "-c", "echo from-cwd"]).write()
    cid = t.id()
    r = t.rt("run", cid, cwd=b.path, check=False)
    assert r.rc == 0 and r.out == "from-cwd\n", r
    assert_nothing_left(t, cid, b)


def test_relative_bundle_path(t):
    b = t.bundle("relb", args=["sh", "-c", "echo rel"]).write()
    cid = t.id()
    r = t.rt("run", "--keep", "--bundle", "relb", cid, cwd=t.tmp, check=False)
    try:
        assert r.rc == 0 and r.out == "rel\n", r
        st = t.rt.state(cid)
        assert st["bundle"] == b.path, st  # stored absolute
        assert st["rootfs"] == b.rootfs, st
    finally:
        t.rt.cleanup(cid)


# ------------------------------------------------------------------ run (foreground)

def test_run_exit_code(t):
    for code in (0, 3, 255):
        b = t.bundle(args=["sh", "-c", f"exit {code}"]).write()
        r = t.rt.run(t.id(f"e{code}"), b)
        assert r.rc == code, r


def test_run_killed_by_signal(t):
    """Exit status is 128+signal. Without a pid namespace sh is not an init, so it can
    signal itself."""
    b = t.bundle(args=["sh", "-c", "kill -TERM $$; sleep 5"])
    b.remove_namespace("pid").write()
    r = t.rt.run(t.id("term"), b)
    assert r.rc == 128 + signal.SIGTERM, r
    b.set_args("sh", "-c", "kill -KILL $$; sleep 5").write()
    r = t.rt.run(t.id("kill"), b)
    assert r.rc == 128 + signal.SIGKILL, r


def test_run_killed_from_outside(t):
    b = sleeper(t)
    cid = t.id()
    res = {}
    th = threading.Thread(target=lambda: res.setdefault("r", t.rt.run(cid, b, timeout=60)))
    th.start()
    try:
        util.wait_for(lambda: t.rt.status(cid) == "running", what="container to run")
        t.rt.kill(cid, "KILL")
    finally:
        th.join(60)
    assert res["r"].rc == 137, res["r"]
    assert_nothing_left(t, cid, b)


def test_run_stdio_passthrough(t):
    b = t.bundle(args=["sh", "-c", "echo out-line; echo err-line >&2; cat"]).write()
    r = t.rt.run(t.id(), b, input="from-stdin\n")
    assert r.rc == 0, r
    assert r.out == "out-line\nfrom-stdin\n", r
    assert r.err == "err-line\n", r


def test_run_removes_container_by_default(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 0, r
    assert_nothing_left(t, cid, b)


def test_run_keep(t):
    b = t.bundle(args=["sh", "-c", "exit 4"]).write()
    cid = t.id()
    r = t.rt.run(cid, b, keep=True)
    assert r.rc == 4, r
    st = t.rt.state(cid)
    assert st["status"] == "stopped" and st["pid"] == 0, st
    assert cid in t.rt.list_ids()
    t.rt.delete(cid)
    assert_nothing_left(t, cid, b)


def test_run_detached(t):
    b = sleeper(t)
    cid = t.id()
    t0 = time.monotonic()
    try:
        r = t.rt.run_detached(cid, b, pid_file=t.path("pid"))
        assert time.monotonic() - t0 < 20, "run -d must not wait for the container"
        assert r.out == "" and r.err == "", r
        st = t.rt.state(cid)
        assert st["status"] == "running", st
        assert util.read_file(t.path("pid")) == str(st["pid"])
        util.wait_for(lambda: cmdline(st["pid"]) == "sleep 1000")
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_run_detached_short_lived(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    t.rt.run_detached(cid, b)
    util.wait_for(lambda: t.rt.status(cid) == "stopped", what="container to stop")
    assert t.rt.state(cid)["pid"] == 0
    t.rt.delete(cid)
    assert_nothing_left(t, cid, b)


# ------------------------------------------------------------------ state

def test_state_fields(t):
    b = sleeper(t)
    b.config["annotations"] = {"org.example.key": "value", "com.example/x": "y"}
    b.write()
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        r = t.rt("state", cid)
        st = json.loads(r.out)
        keys = list(st)
        assert keys == STATE_KEYS[:7] + ["annotations", "owner"], keys
        assert st["id"] == cid
        assert st["status"] == "running"
        assert st["bundle"] == b.path
        assert st["rootfs"] == b.rootfs
        assert st["annotations"] == {"org.example.key": "value", "com.example/x": "y"}
        assert st["owner"] == ""
        assert re.match(r"^\d+\.\d+\.\d+", st["ociVersion"]), st
        parse_created(st["created"])
        # formatting: 2-space indent, no trailing newline (json.MarshalIndent)
        assert r.out == json.dumps(st, indent=2), repr(r.out)
        assert not r.out.endswith("\n")
    finally:
        t.rt.cleanup(cid)


def test_state_without_annotations_has_no_key(t):
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.create(cid, b)
        st = t.rt.state(cid)
        assert list(st) == STATE_KEYS, list(st)
    finally:
        t.rt.cleanup(cid)


def test_state_stopped_pid_zero(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    t.rt.run(cid, b, keep=True)
    try:
        st = t.rt.state(cid)
        assert st["status"] == "stopped" and st["pid"] == 0, st
    finally:
        t.rt.cleanup(cid)


# ------------------------------------------------------------------ list

def go_tabwriter(rows, minwidth=12, padding=3):
    """What Go's tabwriter.NewWriter(w, 12, 1, 3, ' ', 0) prints for tab-separated rows."""
    ncol = max(len(r) for r in rows)
    widths = [0] * ncol
    for r in rows:
        for i, c in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(c) + padding, minwidth)
    out = []
    for r in rows:
        line = "".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1])) + r[-1]
        out.append(line + "\n")
    return "".join(out)


def test_list_empty(t):
    r = t.rt("list")
    assert r.out == go_tabwriter([["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]), \
        repr(r.out)
    assert t.rt("list", "--format", "json").out == "null\n"
    assert t.rt("list", "-q").out == ""


def test_list_table_and_json(t):
    b1 = sleeper(t, "b1")
    b2 = t.bundle("b2", args=["true"]).write()
    c1, c2, c3 = t.id("a"), t.id("b"), t.id("c")
    try:
        t.rt.run_detached(c1, b1)
        t.rt.create(c2, b1)
        t.rt.run(c3, b2, keep=True)
        js = t.rt.list_json()
        r = t.rt("list", "--format", "json")
        assert r.out.endswith("]\n") and "\n" not in r.out[:-1], "compact JSON + newline"
        by = {c["id"]: c for c in js}
        assert sorted(by) == sorted([c1, c2, c3]), by
        assert by[c1]["status"] == "running" and by[c1]["pid"] > 0
        assert by[c2]["status"] == "created" and by[c2]["pid"] > 0
        assert by[c3]["status"] == "stopped" and by[c3]["pid"] == 0
        for c in js:
            assert list(c) == STATE_KEYS, list(c)
            assert c["owner"] == "root", c  # user name of the state dir's owner
            st = t.rt.state(c["id"])
            for k in ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created"):
                assert c[k] == st[k], (k, c, st)
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        for c in js:  # list prints in the same order as its JSON form
            rows.append([c["id"], str(c["pid"]), c["status"], c["bundle"], c["created"],
                         c["owner"]])
        table = t.rt("list").out
        assert table == go_tabwriter(rows), f"{table!r}\n!=\n{go_tabwriter(rows)!r}"
        assert sorted(t.rt("list", "-q").out.split("\n")[:-1]) == sorted([c1, c2, c3])
        assert t.rt("list", "--quiet").out == t.rt("list", "-q").out
        assert t.rt("list", "-f", "json").out == r.out
    finally:
        t.rt.cleanup(c1, c2, c3)


def test_list_bad_format(t):
    r = t.rt("list", "--format", "yaml", check=False)
    assert r.rc == 1, r
    assert "invalid format option" in r.err, r


# ------------------------------------------------------------------ kill

def trap_bundle(t, name=None):
    b = t.bundle(name, args=["sh", "-c",
                             'trap "echo got-TERM; exit 0" TERM; trap "echo got-USR1" USR1; '
                             'trap "echo got-HUP" HUP; echo ready; '
                             'while true; do sleep 0.05; done'])
    return b.write()


def _run_trapper(t, cid, b):
    out = open(t.path(f"{cid}.out"), "w+")
    t.defer(out.close)
    t.rt.run_detached(cid, b, stdout=out)
    util.wait_for(lambda: "ready" in util.read_file(out.name), what="trap handlers")
    return out.name


def test_kill_default_is_sigterm(t):
    b = trap_bundle(t)
    cid = t.id()
    try:
        out = _run_trapper(t, cid, b)
        t.rt.kill(cid)
        util.wait_for(lambda: t.rt.status(cid) == "stopped", what="container to stop")
        assert "got-TERM" in util.read_file(out)
    finally:
        t.rt.cleanup(cid)


def test_kill_signal_names_and_numbers(t):
    b = trap_bundle(t)
    cid = t.id()
    try:
        out = _run_trapper(t, cid, b)
        for i, sig in enumerate(("USR1", "SIGUSR1", str(int(signal.SIGUSR1)), "HUP", "SIGHUP",
                                 "1")):
            t.rt.kill(cid, sig)
            want = "got-USR1" if i < 3 else "got-HUP"
            util.wait_for(lambda: util.read_file(out).count(want) >= (i % 3) + 1,
                          what=f"{want} after kill {sig}")
        assert t.rt.status(cid) == "running"
    finally:
        t.rt.cleanup(cid)


def test_kill_sigkill_spellings(t):
    for sig in ("KILL", "SIGKILL", "9"):
        b = sleeper(t, f"b{sig}")
        cid = t.id(sig.lower())
        try:
            t.rt.run_detached(cid, b)
            pid = t.rt.state(cid)["pid"]
            t.rt.kill(cid, sig)
            util.wait_for(lambda: t.rt.status(cid) == "stopped", what=f"stop after {sig}")
            assert not util.pid_alive(pid)
            t.rt.delete(cid)
        finally:
            t.rt.cleanup(cid)
        assert_nothing_left(t, cid, b)


def test_kill_unknown_signal(t):
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        r = t.rt.kill(cid, "SIGBOGUS", check=False)
        assert_error(r, 1, 'unknown signal "SIGBOGUS"')
        assert t.rt.status(cid) == "running"
    finally:
        t.rt.cleanup(cid)


def test_kill_all(t):
    """Without --all only init is signalled (and an init without a handler ignores USR1);
    with --all every process in the container gets it."""
    b = t.bundle(args=["sh", "-c", "sleep 1000 & sleep 1000 & echo ready; wait"]).write()
    cid = t.id()
    try:
        with open(t.path("out"), "w+") as out:
            t.rt.run_detached(cid, b, stdout=out)
        util.wait_for(lambda: "ready" in util.read_file(t.path("out")))
        pids = util.wait_for(lambda: len(t.rt.ps(cid).json()) == 3 and t.rt.ps(cid).json(),
                             what="3 processes")
        t.rt.kill(cid, "USR1")
        time.sleep(0.3)
        assert sorted(t.rt.ps(cid).json()) == sorted(pids), "kill without --all hit children"
        t.rt.kill(cid, "USR1", all=True)
        util.wait_for(lambda: t.rt.status(cid) == "stopped", what="container to stop")
        for p in pids:
            util.wait_pid_gone(p)
    finally:
        t.rt.cleanup(cid)


def test_kill_stopped_container(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    t.rt.run(cid, b, keep=True)
    try:
        r = t.rt.kill(cid, "KILL", check=False)
        assert_error(r, 1, "container not running")
    finally:
        t.rt.cleanup(cid)


def test_kill_created_container(t):
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.create(cid, b)
        pid = t.rt.state(cid)["pid"]
        t.rt.kill(cid, "KILL")
        util.wait_for(lambda: t.rt.status(cid) == "stopped")
        util.wait_pid_gone(pid)
        t.rt.delete(cid)
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


# ------------------------------------------------------------------ delete

def test_delete_stopped(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    t.rt.run(cid, b, keep=True)
    r = t.rt.delete(cid)
    assert r.out == "" and r.err == "", r
    assert_nothing_left(t, cid, b)


def test_delete_running_needs_force(t):
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        pid = t.rt.state(cid)["pid"]
        r = t.rt.delete(cid, check=False)
        assert_error(r, 1, f"cannot delete container {cid} that is not stopped: running")
        assert t.rt.status(cid) == "running" and util.pid_alive(pid)
        t.rt.delete(cid, force=True)
        assert not util.pid_alive(pid)
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_delete_force_short_flag(t):
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        t.rt("delete", "-f", cid)
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_delete_created(t):
    """Deleting a created container (no --force) kills its init."""
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.create(cid, b)
        pid = t.rt.state(cid)["pid"]
        t.rt.delete(cid)
        util.wait_pid_gone(pid)
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_delete_force_kills_all_processes(t):
    b = t.bundle(args=["sh", "-c", "sleep 1000 & sleep 1000 & wait"]).write()
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        pids = util.wait_for(lambda: len(t.rt.ps(cid).json()) == 3 and t.rt.ps(cid).json())
        t.rt.delete(cid, force=True)
        for p in pids:
            assert not util.pid_alive(p), f"pid {p} survived delete --force"
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


# ------------------------------------------------------------------ ps

def test_ps_json(t):
    b = t.bundle(args=["sh", "-c", "sleep 1000 & wait"]).write()
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        init = t.rt.state(cid)["pid"]
        r = util.wait_for(lambda: (lambda r: len(r.json()) == 2 and r)(t.rt.ps(cid, "json")))
        assert r.out.endswith("\n"), repr(r.out)
        pids = r.json()
        assert all(isinstance(p, int) for p in pids), pids
        assert init in pids, (init, pids)
        assert set(pids) <= own_cgroup_pids(t) | {init}
    finally:
        t.rt.cleanup(cid)


def test_ps_table(t):
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        init = t.rt.state(cid)["pid"]
        r = t.rt.ps(cid, "table")
        lines = r.out.strip("\n").split("\n")
        hdr = lines[0].split()
        assert "PID" in hdr and "CMD" in hdr, lines[0]
        pidcol = hdr.index("PID")
        rows = [ln.split() for ln in lines[1:]]
        assert [int(r[pidcol]) for r in rows] == [init], r.out
        assert "sleep 1000" in lines[1]
        # default format is table
        assert t.rt("ps", cid).out.split("\n")[0] == lines[0]
    finally:
        t.rt.cleanup(cid)


def test_ps_custom_args(t):
    b = sleeper(t)
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        init = t.rt.state(cid)["pid"]
        r = t.rt("ps", cid, "-o", "pid,comm")
        lines = r.out.strip().split("\n")
        assert lines[0].split() == ["PID", "COMMAND"], r.out
        assert lines[1].split() == [str(init), "sleep"], r.out
    finally:
        t.rt.cleanup(cid)


def test_ps_stopped_container(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    t.rt.run(cid, b, keep=True)
    try:
        r = t.rt.ps(cid, "json", check=False)
        assert r.rc == 0 and json.loads(r.out) in ([], None), r
    finally:
        t.rt.cleanup(cid)
