"""Rollback and fork restore *everything* of a snapshot, seen from inside the container.

The workload: pid 1 (a shell, cwd a 12-level deep directory) with 4 children --
  producer | consumer   numbered lines through a pipe, appended to /state/consumed
  counter               a number held in a shell variable (USR2: +1, USR1: report)
  reader                fd 3 open on /data/big at a known offset (USR2: read 1000 bytes on)
-- and a workspace /ws of 2,000 files (in the bundle's rootfs, some changed in the upper
before the snapshot). After the snapshot the files, the counter, the offset and the cwd dirs
change; rollback (warm from a template, cold through CRIU; after a sync or an --async
snapshot) or fork must give back exactly the snapshot: same inner pids, cwds, file checksums,
counter, offset, and a pipe whose lines continue without a gap or a duplicate.
"""
import hashlib
import os

from lib import util
from lib import snapshots as S

DEEP = "/deep/" + "/".join(f"l{i}" for i in range(1, 13))
COUNTER_CWD = "/ws/d07/sub/inner"
NFILES = 2000
BIG = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(256 * 1024))
START_POS = 1234
STEP = 1000

MAIN = """\
mkdir -p /state
sh /opt/producer.sh | sh /opt/consumer.sh &
sh /opt/counter.sh &
sh /opt/reader.sh &
wait
"""
PRODUCER = """\
echo $$ > /state/producer.pid
i=0
while :; do i=$((i+1)); echo "line$i" || exit 0; sleep 0.05; done
"""
CONSUMER = """\
echo $$ > /state/consumer.pid
while read -r l; do echo "$l" >> /state/consumed; done
"""
COUNTER = f"""\
cd {COUNTER_CWD}
n=0
trap 'n=$((n+1)); echo $n > /state/counter.out' USR2
trap 'echo $n > /state/counter.out' USR1
echo $$ > /state/counter.pid
while :; do sleep 0.05; done
"""
READER = f"""\
exec 3< /data/big
dd bs={START_POS} count=1 <&3 >/dev/null 2>&1
report() {{ cat /proc/self/fdinfo/3 > /state/reader.out; }}
trap 'report' USR1
trap 'dd bs={STEP} count=1 <&3 > /state/reader.chunk 2>/dev/null; report' USR2
echo $$ > /state/reader.pid
while :; do sleep 0.05; done
"""
NAMES = ("producer", "consumer", "counter", "reader")

# Ask a child for something: remove its .out, signal it, wait for the .out to come back.
ASK = """\
f=/state/$1.out; rm -f $f
kill -$2 $(cat /state/$3.pid) || exit 2
i=0
while [ ! -s $f ]; do i=$((i+1)); [ $i -gt 1000 ] && { echo "no answer from $3" >&2; exit 3; }; usleep 10000; done
cat $f
"""

# pid 1 and its children: "pid ppid cwd cmdline" (the exec's own processes have ppid 0 or $$).
PROCS = """\
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  read -r st < $d/stat 2>/dev/null || continue
  set -- $st
  [ "$p" = 1 ] || [ "$4" = 1 ] || continue
  echo "$p $4 $(readlink $d/cwd) $(tr '\\0' ' ' < $d/cmdline)"
done
"""


def ws_path(i):
    return f"d{i % 20:02d}/f{i:04d}"


def ws_content(i):
    return (f"file {i} " + "x" * (i % 13) + "\n") * (i % 7 + 1)


def workload_bundle(t, annotations=None):
    b = S.snap_bundle(t, ("sh", "/opt/main.sh"), annotations=annotations, cwd=DEEP)
    for name, text in (("main", MAIN), ("producer", PRODUCER), ("consumer", CONSUMER),
                       ("counter", COUNTER), ("reader", READER)):
        b.file(f"opt/{name}.sh", text)
    os.makedirs(b.file(DEEP.lstrip("/")), exist_ok=True)
    os.makedirs(b.file(COUNTER_CWD.lstrip("/")), exist_ok=True)
    os.makedirs(b.file("data"), exist_ok=True)
    with open(b.file("data/big"), "wb") as f:
        f.write(BIG)
    for i in range(NFILES):
        p = b.file("ws/" + ws_path(i))
        if i < 20:
            os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(ws_content(i))
    return b


def start_workload(t, annotations=None, name="w"):
    b = workload_bundle(t, annotations)
    cid = S.start(t, b, t.id(name))
    ready = " && ".join(f"[ -s /state/{n}.pid ]" for n in NAMES) + " && [ -s /state/consumed ]"
    util.wait_for(lambda: t.rt.exec(cid, "sh", "-c", ready, cwd="/").rc == 0, timeout=30,
                  what="the workload's 4 children to start")
    return cid, b


def ask(t, cid, who, sig, out=None):
    return S.exec_ok(t, cid, ASK, out or who, sig, who)


def counter(t, cid):
    return int(ask(t, cid, "counter", "USR1"))


def bump(t, cid):
    return int(ask(t, cid, "counter", "USR2"))


def reader_pos(t, cid, advance=False):
    out = ask(t, cid, "reader", "USR2" if advance else "USR1")
    for line in out.splitlines():
        if line.startswith("pos:"):
            return int(line.split()[1])
    raise AssertionError(f"no pos in fdinfo: {out!r}")


def reader_chunk_md5(t, cid):
    return S.exec_ok(t, cid, "md5sum < /state/reader.chunk").split()[0]


def procs(t, cid):
    """{inner pid: (ppid, cwd, cmdline)} of pid 1 and its children, from inside."""
    res = {}
    for line in S.exec_ok(t, cid, PROCS).splitlines():
        pid, ppid, cwd, cmd = line.split(" ", 3)
        res[int(pid)] = (int(ppid), cwd, cmd.strip())
    return res


def child_pids(t, cid):
    return {n: int(S.exec_ok(t, cid, f"cat /state/{n}.pid")) for n in NAMES}


def consumed(t, cid):
    return S.exec_ok(t, cid, "cat /state/consumed").split()


def assert_gapless(lines, what):
    want = [f"line{i}" for i in range(1, len(lines) + 1)]
    if lines != want:
        bad = next(i for i, (a, b) in enumerate(zip(lines, want)) if a != b)
        raise AssertionError(f"{what}: the pipe's lines are not 1..{len(lines)} without a gap "
                             f"or duplicate: at index {bad}: {lines[max(0, bad - 3):bad + 4]}")


PRE_CHANGES = """\
cd /ws
for i in $(seq 0 49); do d=$(printf d%02d $((i % 20))); echo "pre $i" >> $d/$(printf f%04d $i); done
for i in $(seq 50 69); do d=$(printf d%02d $((i % 20))); rm $d/$(printf f%04d $i); done
mkdir -p /ws/new
for i in $(seq 0 29); do echo "new $i" > /ws/new/pre$i; done
"""

POST_CHANGES = """\
cd /ws
for i in $(seq 0 99); do d=$(printf d%02d $((i % 20))); echo "post $i" > $d/$(printf f%04d $i); done
for i in $(seq 100 199); do d=$(printf d%02d $((i % 20))); rm -f $d/$(printf f%04d $i); done
rm -rf /ws/d07 /ws/new/pre3 /deep/l1/l2/l3/l4/l5/l6
echo back > /ws/d10/f0050
mkdir -p /ws/post/a/b
for i in $(seq 0 99); do echo "post $i" > /ws/post/a/b/p$i; done
echo MARK >> /state/consumed
"""


def capture(t, cid):
    """What the snapshot must give back, taken just before it (all stable while we look)."""
    assert bump(t, cid) == 1 and bump(t, cid) == 2 and bump(t, cid) == 3
    pos = reader_pos(t, cid, advance=True)
    assert pos == START_POS + STEP, pos
    assert reader_chunk_md5(t, cid) == hashlib.md5(BIG[START_POS:START_POS + STEP]).hexdigest()
    return {"procs": procs(t, cid), "pids": child_pids(t, cid),
            "md5": S.tree_md5(t, cid, "/ws"), "counter": 3, "pos": pos,
            "lines": len(consumed(t, cid))}


def diverge(t, cid, at):
    """Change everything after the snapshot, and check that it did change."""
    c0, p0 = counter(t, cid), reader_pos(t, cid)
    for _ in range(5):
        bump(t, cid)
    assert counter(t, cid) == c0 + 5
    reader_pos(t, cid, advance=True)
    assert reader_pos(t, cid, advance=True) == p0 + 2 * STEP
    S.exec_ok(t, cid, POST_CHANGES)
    md5 = S.tree_md5(t, cid, "/ws")
    assert md5 != at["md5"] and "post/a/b/p7" in md5 and ws_path(150) not in md5
    # the cwds of the counter and of pid 1 are gone in the live generation
    for pid in (at["pids"]["counter"], 1):
        cwd = S.exec_ok(t, cid, f"readlink /proc/{pid}/cwd")
        assert cwd.strip().endswith("(deleted)"), (pid, cwd)


def assert_as_at_snapshot(t, cid, at, what):
    """Everything inside cid is as it was at the snapshot (and runs on from there)."""
    # processes: the same inner pids, parents, cwds and command lines
    now = procs(t, cid)
    assert now == at["procs"], f"{what}: processes differ from the snapshot's:\n" \
        f"  snapshot: {at['procs']}\n  now:      {now}"
    for n in ("producer", "consumer", "reader"):
        assert now[at["pids"][n]][1] == DEEP, (what, n, now)
    assert now[at["pids"]["counter"]][1] == COUNTER_CWD, (what, now)
    assert now[1][1] == DEEP, (what, now)
    # files: the 2,000-file workspace as it was (deleted back, created gone)
    md5 = S.tree_md5(t, cid, "/ws")
    if md5 != at["md5"]:
        missing = sorted(set(at["md5"]) - set(md5))[:5]
        extra = sorted(set(md5) - set(at["md5"]))[:5]
        changed = sorted(k for k in set(md5) & set(at["md5"]) if md5[k] != at["md5"][k])[:5]
        raise AssertionError(f"{what}: workspace differs from the snapshot: {len(md5)} vs "
                             f"{len(at['md5'])} files; missing {missing}, extra {extra}, "
                             f"changed {changed}")
    assert len(md5) == NFILES - 20 + 30, len(md5)
    # the counter continues from its snapshot value
    assert counter(t, cid) == at["counter"], f"{what}: counter {counter(t, cid)} != {at['counter']}"
    assert bump(t, cid) == at["counter"] + 1
    # the fd offset is the snapshot's, and reading on gives the bytes that follow it
    pos = reader_pos(t, cid)
    assert pos == at["pos"], f"{what}: fd offset {pos} != {at['pos']}"
    assert reader_pos(t, cid, advance=True) == at["pos"] + STEP
    assert reader_chunk_md5(t, cid) == hashlib.md5(BIG[at["pos"]:at["pos"] + STEP]).hexdigest()
    # the pipe pair: the file is the snapshot's, and new lines follow without a gap
    lines = consumed(t, cid)
    assert "MARK" not in lines, f"{what}: /state/consumed holds a line written after the snapshot"
    assert_gapless(lines, what)
    assert len(lines) >= at["lines"], (what, len(lines), at["lines"])
    more = util.wait_for(lambda: (lambda ls: len(ls) >= len(lines) + 5 and ls)(consumed(t, cid)),
                         timeout=20, what=f"{what}: new lines through the pipe")
    assert_gapless(more, what + " (later)")


def scenario(t, warm, async_):
    ann = None if warm else {"io.deltabox.templates": "0"}
    cid, b = start_workload(t, ann)
    timer = S.Timer(t)
    S.exec_ok(t, cid, PRE_CHANGES)
    at = capture(t, cid)
    snap, took = S.snapshot(t, cid, async_=async_)
    timer.add("snapshot" + (" --async" if async_ else ""), took)
    if warm:
        tpl = S.wait_template(t, cid, snap)
    diverge(t, cid, at)
    if warm:
        assert S.templates(t, cid) == [snap], S.templates(t, cid)
    else:
        assert S.templates(t, cid) == [], S.templates(t, cid)
    anchor = t.rt.state(cid)["pid"]
    took = S.rollback(t, cid, snap)
    timer.add("rollback " + ("warm" if warm else "cold"), took)
    st = t.rt.state(cid)
    assert st["status"] == "running" and st["pid"] == anchor, st
    if warm:  # the template became the generation
        assert tpl["host_pid"] in S.generation_pid(t, cid), (S.anchor_children(t, cid), tpl)
    assert_as_at_snapshot(t, cid, at, f"after {'warm' if warm else 'cold'} rollback")
    rows = S.listing(t, cid)
    assert [r["id"] for r in rows] == [snap] and rows[0]["head"] and rows[0]["class"] == "template", rows
    # Roll back to the same snapshot once more (warm: the pool refilled), same result.
    diverge(t, cid, at)
    if warm:
        tpl = S.wait_template(t, cid, snap)
    timer.add("rollback " + ("warm" if warm else "cold"), S.rollback(t, cid, snap))
    if warm:
        assert tpl["host_pid"] in S.generation_pid(t, cid), (S.anchor_children(t, cid), tpl)
    else:
        assert S.templates(t, cid) == []
    assert_as_at_snapshot(t, cid, at, "after the second rollback")
    timer.report(f"({'warm' if warm else 'cold'}, {'async' if async_ else 'sync'} snapshot)")
    t.rt.delete(cid, force=True)
    S.assert_clean(t, cid, b)


@util.timeout(240)
def test_warm_rollback_after_sync_snapshot(t):
    scenario(t, warm=True, async_=False)


@util.timeout(240)
def test_warm_rollback_after_async_snapshot(t):
    scenario(t, warm=True, async_=True)


@util.timeout(240)
def test_cold_rollback_after_sync_snapshot(t):
    scenario(t, warm=False, async_=False)


@util.timeout(240)
def test_cold_rollback_after_async_snapshot(t):
    scenario(t, warm=False, async_=True)


@util.timeout(240)
def test_cold_rollback_right_after_async_snapshot(t):
    """Templates enabled, but the rollback comes right after an --async snapshot returns:
    whichever path it takes (the template is most likely not there yet), the result is exact."""
    cid, b = start_workload(t)
    S.exec_ok(t, cid, PRE_CHANGES)
    at = capture(t, cid)
    snap, _ = S.snapshot(t, cid, async_=True)
    took = S.rollback(t, cid, snap)
    print(f"rollback right after an async snapshot: {took * 1000:.1f} ms "
          f"(templates then: {S.templates(t, cid)})")
    assert_as_at_snapshot(t, cid, at, "after a rollback right after an async snapshot")
    diverge(t, cid, at)
    S.rollback(t, cid, snap)
    assert_as_at_snapshot(t, cid, at, "after the second rollback")
    t.rt.delete(cid, force=True)
    S.assert_clean(t, cid, b)


@util.timeout(240)
def test_fork_four_from_one_snapshot(t):
    cid, b = start_workload(t)
    timer = S.Timer(t)
    S.exec_ok(t, cid, PRE_CHANGES)
    at = capture(t, cid)
    snap, took = S.snapshot(t, cid)
    timer.add("snapshot", took)
    diverge(t, cid, at)
    forks = [t.id(f"f{i}") for i in range(4)]
    r = S.fork(t, cid, snap, forks)
    timer.add("fork x4", r.elapsed)
    anchors = {t.rt.state(f)["pid"] for f in forks}
    assert len(anchors) == 4
    for f in forks:
        assert t.rt.state(f)["status"] == "running"
        assert_as_at_snapshot(t, f, at, f"in fork {f}")
    # The forks are independent of each other and of the source.
    bump(t, forks[0])
    assert counter(t, forks[0]) == at["counter"] + 2
    assert counter(t, forks[1]) == at["counter"] + 1
    assert counter(t, cid) == at["counter"] + 5
    S.exec_ok(t, forks[2], "echo mine > /ws/d00/f0000")
    assert S.exec_ok(t, forks[3], "cat /ws/d00/f0000") != "mine\n"
    assert S.exec_ok(t, cid, "cat /ws/d00/f0000") == "post 0\n"
    timer.report("(fork)")
    for f in forks:
        t.rt.delete(f, force=True)
    t.rt.delete(cid, force=True)
    for f in forks:
        S.assert_clean(t, f)
    S.assert_clean(t, cid, b)
