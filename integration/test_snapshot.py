"""Snapshot-enabled containers: the anchor, generations, snapshot, rollback, fork."""
import json
import os
import subprocess

from lib import util
from lib.checks import assert_error, assert_nothing_left


def snap_bundle(t, name=None, args=("sleep", "1000")):
    t.only_deltabox("snapshots are a deltabox feature")
    b = t.bundle(name, args=list(args))
    b.config.setdefault("annotations", {})["io.deltabox.snapshots"] = "true"
    b.writable()
    return b.write()


def running_snap(t, name=None, args=("sleep", "1000")):
    """A detached snapshot-enabled container whose stdout/stderr go to t.path("<cid>.out").

    Plain files, not the harness' O_TMPFILE temporaries: those are opened O_NOFOLLOW, which CRIU
    cannot reopen through /proc/self/fd when it reconnects a restored generation's stdio."""
    b = snap_bundle(t, name, args)
    cid = t.id(name or "c")
    t.defer(t.rt.cleanup, cid)
    with open(t.path(f"{cid}.out"), "w") as out:
        t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return cid, b


def status(t, pid):
    return util.read_file(f"/proc/{pid}/status")


def test_anchor_is_init_and_workload_is_generation(t):
    cid, b = running_snap(t, args=("sh", "-c", "echo $$ > /tmp/pid; exec sleep 1000"))
    st = t.rt.state(cid)
    assert st["status"] == "running", st
    anchor = st["pid"]
    # The workload runs beneath the anchor, as pid 1 of its own nested pid namespace.
    children = util.read_file(f"/proc/{anchor}/task/{anchor}/children").split()
    assert len(children) == 1, children
    gen = int(children[0])
    nspid = [ln for ln in status(t, gen).splitlines() if ln.startswith("NSpid:")][0].split()[1:]
    assert nspid[-1] == "1" and len(nspid) == 3, nspid
    assert os.readlink(f"/proc/{gen}/ns/pid") != os.readlink(f"/proc/{anchor}/ns/pid")
    for ns in ("net", "ipc", "uts"):
        assert os.readlink(f"/proc/{gen}/ns/{ns}") == os.readlink(f"/proc/{anchor}/ns/{ns}"), ns
    r = t.rt.exec(cid, "cat", "/tmp/pid")
    assert r.rc == 0 and r.out == "1\n", r


def test_exec_sees_generation(t):
    cid, _ = running_snap(t)
    r = t.rt.exec(cid, "sh", "-c", "echo $$; ps -o pid,comm | grep -c sleep")
    assert r.rc == 0, r
    pid, sleeps = r.out.split()
    assert int(pid) > 1 and sleeps == "1", r


def test_foreground_run_exit_status(t):
    b = snap_bundle(t, args=("sh", "-c", "echo hello; exit 7"))
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 7 and r.out == "hello\n", r
    assert_nothing_left(t, cid, b)


def test_writes_land_in_layers_not_bundle(t):
    cid, b = running_snap(t)
    r = t.rt.exec(cid, "sh", "-c", "echo data > /newfile && cat /newfile")
    assert r.out == "data\n", r
    assert not os.path.exists(os.path.join(b.rootfs, "newfile"))


def test_kill_and_delete(t):
    cid, b = running_snap(t)
    t.rt("kill", cid, "KILL")
    util.wait_for(lambda: t.rt.status(cid) == "stopped", what="container to stop")
    t.rt.delete(cid)
    assert_nothing_left(t, cid, b)


def test_delete_force_running(t):
    cid, b = running_snap(t)
    t.rt.exec(cid, "sh", "-c", "sleep 1000 &")
    t.rt.delete(cid, force=True)
    assert_nothing_left(t, cid, b)


def test_snapshots_refused_with_shared_pid_namespace(t):
    b = snap_bundle(t, args=("true",))
    b.remove_namespace("pid")
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "cannot enable snapshots", "pid namespace")
    assert_nothing_left(t, cid, b)


COUNTER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done")


def counter(t, cid):
    def read():
        r = t.rt.exec(cid, "cat", "/tmp/counter")
        return r.rc, r.out
    return util.read_counter(read)


def test_snapshot_and_cold_rollback(t):
    cid, b = running_snap(t, args=COUNTER)
    util.wait_for(lambda: counter(t, cid) > 3, what="counter to run")
    t.rt.exec(cid, "sh", "-c", "echo before > /data.txt; rm /bin/true")
    r = t.rt("snapshot", cid)
    assert r.rc == 0, r
    snap = r.out.strip()
    at_snapshot = counter(t, cid)
    util.wait_for(lambda: counter(t, cid) > at_snapshot + 10, what="counter to move on")
    t.rt.exec(cid, "sh", "-c", "echo after > /data.txt; echo new > /new.txt")
    anchor = t.rt.state(cid)["pid"]
    r = t.rt("rollback", cid, snap)
    assert r.rc == 0, r
    st = t.rt.state(cid)
    assert st["status"] == "running" and st["pid"] == anchor, st
    assert t.rt.exec(cid, "cat", "/data.txt").out == "before\n"
    assert t.rt.exec(cid, "ls", "/new.txt").rc != 0
    assert t.rt.exec(cid, "ls", "/bin/true").rc != 0
    # The counter continues from its value at the snapshot, not from where it was.
    value = counter(t, cid)
    assert at_snapshot - 2 <= value < at_snapshot + 10, (at_snapshot, value)



def wait_template(t, cid, snap, timeout=20):
    root = t.rt.root
    path = os.path.join(root, cid, "templates", f"{snap}.json")
    util.wait_for(lambda: os.path.exists(path), timeout=timeout, what=f"template of {snap}")


def test_warm_rollback_uses_template(t):
    cid, b = running_snap(t, args=COUNTER)
    util.wait_for(lambda: counter(t, cid) > 3, what="counter to run")
    t.rt.exec(cid, "sh", "-c", "echo before > /data.txt")
    snap = t.rt("snapshot", cid).out.strip()
    at_snapshot = counter(t, cid)
    wait_template(t, cid, snap)
    t.rt.exec(cid, "sh", "-c", "echo after > /data.txt")
    util.wait_for(lambda: counter(t, cid) > at_snapshot + 5, what="counter to move on")
    r = t.rt("rollback", cid, snap)
    assert r.rc == 0, r
    assert t.rt.exec(cid, "cat", "/data.txt").out == "before\n"
    value = counter(t, cid)
    assert at_snapshot - 2 <= value < at_snapshot + 10, (at_snapshot, value)
    # The pool refills: a second warm rollback to the same snapshot.
    wait_template(t, cid, snap)
    t.rt.exec(cid, "sh", "-c", "echo again > /data.txt")
    t.rt("rollback", cid, snap)
    assert t.rt.exec(cid, "cat", "/data.txt").out == "before\n"


def test_async_snapshot(t):
    cid, b = running_snap(t, args=COUNTER)
    util.wait_for(lambda: counter(t, cid) > 3, what="counter to run")
    t.rt.exec(cid, "sh", "-c", "echo one > /data.txt")
    snap = t.rt("snapshot", "--async", cid).out.strip()
    assert t.rt.state(cid)["status"] == "running"
    t.rt.exec(cid, "sh", "-c", "echo two > /data.txt")  # waits for the dump to finish
    t.rt("rollback", cid, snap)
    assert t.rt.exec(cid, "cat", "/data.txt").out == "one\n"


def test_fork_four(t):
    cid, b = running_snap(t, args=COUNTER)
    util.wait_for(lambda: counter(t, cid) > 3, what="counter to run")
    t.rt.exec(cid, "sh", "-c", "echo parent > /data.txt")
    snap = t.rt("snapshot", cid).out.strip()
    at_snapshot = counter(t, cid)
    forks = [t.id(f"f{i}") for i in range(4)]
    for f in forks:
        t.defer(t.rt.cleanup, f)
    with open(t.path("forks.out"), "w") as out:
        r = t.rt("fork", cid, snap, *forks, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False)
    assert r.rc == 0, util.read_file(t.path("forks.out"))
    anchors = set()
    for f in forks:
        st = t.rt.state(f)
        assert st["status"] == "running", st
        anchors.add(st["pid"])
        assert t.rt.exec(f, "cat", "/data.txt").out == "parent\n"
        value = counter(t, f)
        assert at_snapshot - 2 <= value < at_snapshot + 40, (at_snapshot, value)
    assert len(anchors) == 4
    # The four restored side by side: each kept CRIU's log in its own state dir.
    for f in forks:
        assert os.path.isfile(os.path.join(t.rt.root, f, "restore.log")), f
    # Each fork has its own filesystem and network namespace.
    t.rt.exec(forks[0], "sh", "-c", "echo mine > /data.txt")
    assert t.rt.exec(forks[1], "cat", "/data.txt").out == "parent\n"
    assert t.rt.exec(cid, "cat", "/data.txt").out == "parent\n"
    nets = {os.readlink(f"/proc/{t.rt.state(f)['pid']}/ns/net") for f in forks + [cid]}
    assert len(nets) == 5
    # A fork outlives its source.
    t.rt.delete(cid, force=True)
    assert counter(t, forks[2]) > 0
    for f in forks:
        t.rt.delete(f, force=True)
    assert_nothing_left(t, cid, b)


def test_snapshots_list_and_remove(t):
    cid, b = running_snap(t)
    s1 = t.rt("snapshot", "--name", "first", cid).out.strip()
    t.rt.exec(cid, "sh", "-c", "echo x > /x")
    s2 = t.rt("snapshot", cid).out.strip()
    rows = json.loads(t.rt("snapshots", "--format", "json", cid).out)
    assert [r["id"] for r in rows] == [s1, s2], rows
    assert rows[0]["name"] == "first" and rows[1]["parent"] == s1 and rows[1]["head"], rows
    assert all(r["class"] == "template" for r in rows), rows
    r = t.rt("snapshots", cid)
    assert r.out.splitlines()[0].split()[:4] == ["ID", "NAME", "PARENT", "CREATED"], r.out
    # Rollback by name, then remove the first snapshot: the second still needs nothing of it.
    t.rt("rollback", cid, "first")
    t.rt("snapshots", "rm", cid, s1)
    rows = json.loads(t.rt("snapshots", "--format", "json", cid).out)
    assert [r["id"] for r in rows] == [s2], rows
    r = t.rt("rollback", cid, s1, check=False)
    assert_error(r, 1, "does not exist")
    t.rt("rollback", cid, s2)
    assert t.rt.exec(cid, "cat", "/x").out == "x\n"


def images_path(cid, snap):
    return os.path.join(os.environ["DELTABOX_STORE"], "containers", cid, "snapshots", snap, "criu")


def test_images_cached_on_tmpfs_then_spilled_to_store(t):
    """With the state root on tmpfs (as /run is), CRIU writes a snapshot's images to the cache in
    the container's state dir; the helper then moves them into the layer store. Rollbacks work
    from either place; io.deltabox.image-cache=0 writes straight to the store."""
    fs = subprocess.run(["stat", "-f", "-c", "%T", t.root], capture_output=True, text=True).stdout.strip()
    if fs != "tmpfs":
        raise util.Skip("the state root is not on tmpfs: no image cache")
    cid, b = running_snap(t, args=COUNTER)
    util.wait_for(lambda: counter(t, cid) > 3, what="counter to run")
    cache = os.path.join(t.root, cid, "images")
    t.rt.exec(cid, "sh", "-c", "echo one > /data.txt")
    first = t.rt("snapshot", cid).out.strip()
    t.rt.exec(cid, "sh", "-c", "echo two > /data.txt")
    second = t.rt("snapshot", cid).out.strip()
    # the newest is read from the cache until the helper spilled it: roll back to it right away
    t.rt.exec(cid, "sh", "-c", "echo three > /data.txt")
    t.rt("rollback", cid, second)
    assert t.rt.exec(cid, "cat", "/data.txt").out == "two\n"
    jobs = os.path.join(t.root, cid, "jobs")
    util.wait_for(lambda: not os.listdir(jobs), timeout=30, what="the helper to finish its jobs")
    for snap in (first, second):
        path = images_path(cid, snap)
        assert os.path.isdir(path) and not os.path.islink(path), f"{snap} not spilled: {path}"
        assert os.path.exists(os.path.join(path, "inventory.img"))
    assert os.listdir(cache) == [], f"cache not emptied: {os.listdir(cache)}"
    t.rt("rollback", cid, first)
    assert t.rt.exec(cid, "cat", "/data.txt").out == "one\n"


def test_image_cache_off(t):
    b = snap_bundle(t, args=COUNTER)
    b.config["annotations"]["io.deltabox.image-cache"] = "0"
    b.write()
    cid = t.id("c")
    t.defer(t.rt.cleanup, cid)
    with open(t.path(f"{cid}.out"), "w") as out:
        t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    snap = t.rt("snapshot", cid).out.strip()
    path = images_path(cid, snap)
    assert os.path.isdir(path) and not os.path.islink(path), path
    assert not os.path.exists(os.path.join(t.root, cid, "images", snap))


def test_rollback_and_fork_with_a_growing_log_as_stdout(t):
    """stdout is a log file opened without O_APPEND (a shell's `> log`) that grows after the
    snapshot; a cold rollback hands the same file back, a fork hands /dev/null: CRIU must not
    compare them with what the dump saw (our CRIU patch 0002)."""
    b = snap_bundle(t, args=COUNTER)
    b.config["annotations"]["io.deltabox.templates"] = "0"
    b.write()
    cid = t.id("c")
    fork_id = t.id("f")
    t.defer(t.rt.cleanup, cid)
    t.defer(t.rt.cleanup, fork_id)
    log = t.path("log.txt")
    with open(log, "w") as out:
        t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    util.wait_for(lambda: counter(t, cid) > 3, what="counter to run")
    t.rt.exec(cid, "sh", "-c", "echo one > /data.txt")
    snap = t.rt("snapshot", cid).out.strip()
    with open(log, "a") as out:
        out.write("the log grew after the snapshot\n")
    t.rt.exec(cid, "sh", "-c", "echo two > /data.txt")
    t.rt("rollback", cid, snap)
    assert t.rt.exec(cid, "cat", "/data.txt").out == "one\n"
    r = t.rt("fork", cid, snap, fork_id, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False)
    assert r.rc == 0, r
    assert t.rt.exec(fork_id, "cat", "/data.txt").out == "one\n"


def test_tmpfs_contents_rolled_back(t):
    """A tmpfs mount's files (/dev/shm) are part of a snapshot, on the warm and the cold path
    (CRIU archives each tmpfs; ours without gzip: CRIU patch 0004)."""
    for templates in ("2", "0"):
        b = snap_bundle(t, name=f"shm{templates}")
        b.config["annotations"]["io.deltabox.templates"] = templates
        b.write()
        cid = t.id(f"shm{templates}")
        t.defer(t.rt.cleanup, cid)
        with open(t.path(f"{cid}.out"), "w") as out:
            t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        t.rt.exec(cid, "sh", "-c", "echo before > /dev/shm/kept; echo doomed > /dev/shm/doomed; "
                                   "mkdir /dev/shm/d; echo deep > /dev/shm/d/f; chmod 640 /dev/shm/kept")
        snap = t.rt("snapshot", cid).out.strip()
        if templates != "0":
            wait_template(t, cid, snap)
        t.rt.exec(cid, "sh", "-c", "echo after > /dev/shm/kept; rm -r /dev/shm/doomed /dev/shm/d; "
                                   "echo new > /dev/shm/new")
        t.rt("rollback", cid, snap)
        r = t.rt.exec(cid, "sh", "-c", "cat /dev/shm/kept /dev/shm/doomed /dev/shm/d/f; "
                                       "stat -c %a /dev/shm/kept; ls /dev/shm")
        assert r.rc == 0 and r.out == "before\ndoomed\ndeep\n640\nd\ndoomed\nkept\n", (templates, r)
        t.rt.delete(cid, force=True)
        assert_nothing_left(t, cid, b)


LOGGER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo line$i; "
                      "[ -f /stop ] && { echo stopped; sleep 1000; }; sleep 0.02; done")


def test_rollback_keeps_the_log_it_writes_to(t):
    """stdout is a log opened without O_APPEND (`> log`). After a rollback the restored
    processes write on at the log's end: what the log got after the snapshot stays (CRIU patch
    0002: the restored tasks share the open file, and its offset, with the anchor's copy)."""
    for templates in ("2", "0"):
        b = snap_bundle(t, name=f"log{templates}", args=LOGGER)
        b.config["annotations"]["io.deltabox.templates"] = templates
        b.write()
        cid = t.id(f"log{templates}")
        t.defer(t.rt.cleanup, cid)
        log = t.path(f"{cid}.log")
        with open(log, "w") as out:
            t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        util.wait_for(lambda: util.read_file(log, "").count("\n") > 5, what="the log to grow")
        snap = t.rt("snapshot", cid).out.strip()
        if templates != "0":
            wait_template(t, cid, snap)
        util.wait_for(lambda: util.read_file(log, "").count("\n") > 40, what="the log to grow on")
        t.rt.exec(cid, "touch", "/stop")
        util.wait_for(lambda: "stopped" in util.read_file(log, ""), what="'stopped' in the log")
        before = util.read_file(log)
        t.rt("rollback", cid, snap)
        util.wait_for(lambda: len(util.read_file(log, "")) > len(before) + 50,
                      what="the rolled-back container to write to its log")
        after = util.read_file(log)
        assert after.startswith(before), (templates, before[-300:], after[-600:])
        assert "\0" not in after, templates
        t.rt.delete(cid, force=True)
        assert_nothing_left(t, cid, b)


def test_fork_onto_a_pipe(t):
    """The caller of fork captures the new containers' output through a pipe, while the source
    container writes to a log file (CRIU patch 0002: no reopen, no seek, of an external file)."""
    cid, b = running_snap(t, args=LOGGER)
    util.wait_for(lambda: util.read_file(t.path(f"{cid}.out"), "").count("\n") > 5,
                  what="the log to grow")
    snap = t.rt("snapshot", cid).out.strip()
    fid = t.id("f")
    t.defer(t.rt.cleanup, fid)
    rd, wr = os.pipe()
    try:
        r = t.rt("fork", cid, snap, fid, stdin=subprocess.DEVNULL, stdout=wr, stderr=wr,
                 check=False)
        os.close(wr)
        wr = -1
        assert r.rc == 0, r
        os.set_blocking(rd, False)
        got = b""

        def more():
            nonlocal got
            try:
                got += os.read(rd, 65536)
            except BlockingIOError:
                pass
            return got.count(b"\n") >= 3
        util.wait_for(more, what="the fork's output on the pipe")
        assert got.startswith(b"line"), got[:100]
        t.rt.delete(fid, force=True)
    finally:
        os.close(rd)
        if wr >= 0:
            os.close(wr)
    t.rt.delete(cid, force=True)
    assert_nothing_left(t, cid, b)


def test_empty_tmpfs_rolled_back(t):
    """An empty tmpfs has no archive in the snapshot (CRIU patch 0004) unless its root differs
    from what its mount options make of it: a chmod of an empty /dev/shm is rolled back too."""
    for mode in ("1777", "700"):
        b = snap_bundle(t, name=f"e{mode}")
        b.config["annotations"]["io.deltabox.templates"] = "0"
        b.write()
        cid = t.id(f"e{mode}")
        t.defer(t.rt.cleanup, cid)
        with open(t.path(f"{cid}.out"), "w") as out:
            t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        t.rt.exec(cid, "chmod", mode, "/dev/shm")
        snap = t.rt("snapshot", cid).out.strip()
        t.rt.exec(cid, "sh", "-c", "chmod 1755 /dev/shm; echo x > /dev/shm/new")
        t.rt("rollback", cid, snap)
        r = t.rt.exec(cid, "sh", "-c", "stat -c %a /dev/shm; ls -A /dev/shm | wc -l")
        assert r.rc == 0 and r.out.split() == [mode, "0"], (mode, r)
        t.rt.delete(cid, force=True)
        assert_nothing_left(t, cid, b)
