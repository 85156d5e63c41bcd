"""A seeded random walk over write / delete / snapshot / rollback / fork (and now and then
`snapshots rm`), checked against a model.

The model is a dict path -> content of the workspace /w; a snapshot saves a copy of it, a
rollback makes the saved copy current again, and a fork must start with it. After every step
the container's tree (one exec: find | md5sum) must equal the model. The seed is printed and
is part of every failure message; DELTABOX_WALK_SEED=<n> replays a walk, DELTABOX_WALK_STEPS
changes its length (default 200).
"""
import hashlib
import os
import random
import time

from lib import util
from lib import snapshots as S

STEPS = int(os.environ.get("DELTABOX_WALK_STEPS", "200"))
DIRS = ["", "a", "a/b", "c", "c/d/e"]
NAMES = [f"f{i}" for i in range(8)]
LOOP = ("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/ticks; sleep 0.1; done")


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class Walk:
    def __init__(self, t, cid, seed):
        self.t, self.cid, self.rng = t, cid, random.Random(seed)
        self.seed = seed
        self.model = {}  # path below /w -> content
        self.saved = {}  # snapshot id -> model at the snapshot
        self.order = []  # snapshot ids, in the order taken
        self.names = {}  # snapshot id -> name (when given one)
        self.parent = {}  # snapshot id -> expected parent
        self.head = ""
        self.log = []
        self.forks = 0
        self.removed = set()
        self.timer = S.Timer(t)
        self.counts = {}

    def fail(self, msg):
        tail = "\n".join(f"  {ln}" for ln in self.log[-12:])
        raise AssertionError(f"seed={self.seed} step={len(self.log)}: {msg}\nlast steps:\n{tail}")

    def tree(self, cid):
        return S.tree_md5(self.t, cid, "/w")

    def check(self, cid=None, model=None, what="after the step"):
        cid = cid or self.cid
        model = self.model if model is None else model
        got = self.tree(cid)
        want = {p: md5(c) for p, c in model.items()}
        if got != want:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            changed = sorted(p for p in set(got) & set(want) if got[p] != want[p])
            self.fail(f"{cid} {what}: tree differs from the model: missing {missing}, "
                      f"extra {extra}, changed {changed}")

    # ---- operations

    def write(self):
        n = self.rng.randint(1, 3)
        script = []
        for _ in range(n):
            d = self.rng.choice(DIRS)
            path = (d + "/" if d else "") + self.rng.choice(NAMES)
            content = f"{self.rng.randrange(10**6)}-{len(self.log)}\n" * self.rng.randint(1, 4)
            if any(p.startswith(path + "/") for p in self.model):
                continue
            if any(path.startswith(p + "/") for p in self.model):
                continue
            self.model[path] = content
            script.append(f"mkdir -p /w/{d} && printf %s '{content}' > /w/{path}")
        if script:
            S.exec_ok(self.t, self.cid, "\n".join(script))
        return f"write {n}"

    def delete(self):
        if not self.model:
            return self.write()
        paths = self.rng.sample(sorted(self.model), min(len(self.model), self.rng.randint(1, 3)))
        for p in paths:
            del self.model[p]
        S.exec_ok(self.t, self.cid, "rm " + " ".join(f"/w/{p}" for p in paths))
        return f"delete {paths}"

    def snapshot(self):
        async_ = self.rng.random() < 0.4
        name = f"n{len(self.order) + len(self.removed)}" if self.rng.random() < 0.3 else None
        snap, took = S.snapshot(self.t, self.cid, name=name, async_=async_)
        self.timer.add("snapshot --async" if async_ else "snapshot", took)
        if snap in self.saved:
            self.fail(f"snapshot id {snap} given twice")
        self.saved[snap] = dict(self.model)
        self.order.append(snap)
        self.parent[snap] = self.head
        self.head = snap
        if name:
            self.names[snap] = name
        return f"snapshot{' --async' if async_ else ''}{' --name ' + name if name else ''} -> {snap}"

    def rollback(self):
        if not self.order:
            return self.snapshot()
        snap = self.rng.choice(self.order)
        ref = self.names.get(snap, snap) if self.rng.random() < 0.5 else snap
        warm = bool(S.template_record(self.t, self.cid, snap))
        r = self.t.rt("rollback", self.cid, ref, check=False, timeout=60)
        if r.rc != 0:
            self.fail(f"rollback to {ref} failed: {r!r}")
        self.timer.add("rollback warm" if warm else "rollback cold", r.elapsed)
        st = self.t.rt.status(self.cid)
        if st != "running":
            self.fail(f"container is {st} after rolling back to {ref}")
        self.model = dict(self.saved[snap])
        self.head = snap
        return f"rollback {ref} ({'warm' if warm else 'cold'})"

    def remove(self):
        """`snapshots rm` of a random snapshot (now and then the head, or one whose
        descendants or templates still stack on its layer): it is gone from the listing and
        cannot be rolled back to; everything else still can."""
        if len(self.order) < 2:
            return self.snapshot()
        snap = self.rng.choice(self.order)
        ref = self.names.get(snap, snap)
        r = self.t.rt("snapshots", "rm", self.cid, ref, check=False)
        if r.rc != 0:
            self.fail(f"snapshots rm {ref} failed: {r!r}")
        self.order.remove(snap)
        self.removed.add(snap)
        r = self.t.rt("rollback", self.cid, snap, check=False)
        if r.rc != 1 or "does not exist" not in r.err:
            self.fail(f"rollback to the removed snapshot {snap}: {r!r}")
        if self.t.rt.status(self.cid) != "running":
            self.fail("the container stopped after a refused rollback")
        return f"snapshots rm {ref}"

    def fork(self):
        if not self.order or self.forks >= 6:
            return self.write()
        snap = self.rng.choice(self.order)
        self.forks += 1
        fid = self.t.id(f"fork{self.forks}")
        r = S.fork(self.t, self.cid, snap, [fid], check=False)
        if r.rc != 0:
            self.fail(f"fork of {snap} failed: {r!r}")
        self.timer.add("fork x1", r.elapsed)
        self.check(fid, self.saved[snap], what=f"(fork of {snap})")
        # a write in the fork is its own
        S.exec_ok(self.t, fid, "echo forked > /w/forked-only")
        self.t.rt.delete(fid, force=True)
        S.assert_gone(self.t, fid)
        return f"fork {snap} -> {fid}"

    def step(self):
        x = self.rng.random()
        op = (self.write if x < 0.33 else self.delete if x < 0.52 else self.snapshot if x < 0.72
              else self.rollback if x < 0.92 else self.remove if x < 0.96 else self.fork)
        self.counts[op.__name__] = self.counts.get(op.__name__, 0) + 1
        desc = op()
        self.log.append(desc)
        self.check()

    def check_listing(self):
        rows = S.listing(self.t, self.cid)
        ids = [r["id"] for r in rows]
        if ids != self.order:
            self.fail(f"`snapshots` lists {ids}, the walk took {self.order}")
        for r in rows:
            if r["parent"] != self.parent[r["id"]] and self.parent[r["id"]] not in self.removed:
                self.fail(f"snapshot {r['id']}: parent {r['parent']!r}, expected "
                          f"{self.parent[r['id']]!r}")
            if r["name"] != self.names.get(r["id"], ""):
                self.fail(f"snapshot {r['id']}: name {r['name']!r}")
            if r["head"] != (r["id"] == self.head):
                self.fail(f"snapshot {r['id']}: head={r['head']}, head is {self.head!r}")


@util.timeout(300)
def test_random_walk(t):
    seed = int(os.environ.get("DELTABOX_WALK_SEED") or random.SystemRandom().randrange(2**32))
    print(f"random walk seed={seed} steps={STEPS}", flush=True)
    b = S.snap_bundle(t, LOOP)
    b.file("w/.keep", "")
    cid = S.start(t, b, t.id("walk"))
    walk = Walk(t, cid, seed)
    walk.model[".keep"] = ""
    t0 = time.monotonic()
    for _ in range(STEPS):
        walk.step()
    walk.check_listing()
    # every snapshot of the walk can still be rolled back to, exactly
    for snap in walk.order[-3:] + walk.order[:2]:
        S.rollback(t, cid, snap)
        walk.check(model=walk.saved[snap], what=f"(final rollback to {snap})")
    print(f"walk: {STEPS} steps in {time.monotonic() - t0:.1f}s, ops {walk.counts}, "
          f"{len(walk.order)} snapshots, {walk.forks} forks", flush=True)
    walk.timer.report(f"seed={seed}")
    t.rt.delete(cid, force=True)
    S.assert_clean(t, cid, b)
