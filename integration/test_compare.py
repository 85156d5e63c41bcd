"""The same bundle under runc and under the runtime under test: state and list must agree
field by field (skipped when the runtime under test is runc itself)."""
import json
import os
import re

from lib.checks import STATE_KEYS, log_messages, parse_created
from lib.util import Skip, wait_for


def _peer(t):
    if t.is_runc:
        raise Skip("the runtime under test is runc: nothing to compare")
    peer = t.peer()
    if not os.access(peer.path, os.X_OK):
        raise Skip(f"reference runc not found at {peer.path}")
    os.makedirs(peer.root, exist_ok=True)
    return peer


def _bundle(t, name):
    b = t.bundle(name, args=["sleep", "1000"])
    b.config["annotations"] = {"org.example.a": "1", "org.example.b": "two"}
    return b.write()


def _assert_same_state(ours, theirs, bundle, ctx):
    assert list(ours) == list(theirs), f"{ctx}: keys {list(ours)} != runc {list(theirs)}"
    assert [k for k in ours if k != "annotations"] == STATE_KEYS, list(ours)
    for k in ("status", "annotations", "owner"):
        assert ours.get(k) == theirs.get(k), f"{ctx}: {k}: {ours.get(k)!r} != {theirs.get(k)!r}"
    assert ours["bundle"] == bundle.path and ours["rootfs"] == bundle.rootfs, ours
    assert re.match(r"^\d+\.\d+\.\d+", ours["ociVersion"]), ours
    if ours["status"] == "stopped":
        assert ours["pid"] == 0, ours
    else:
        assert ours["pid"] > 0 and os.path.exists(f"/proc/{ours['pid']}"), ours
    parse_created(ours["created"])


def test_compare_state_and_list(t):
    peer = _peer(t)
    bo, bt = _bundle(t, "ours"), _bundle(t, "theirs")
    cid = t.id("cmp")
    try:
        for phase in ("created", "running", "stopped"):
            if phase == "created":
                t.rt.create(cid, bo)
                peer.create(cid, bt)
            elif phase == "running":
                t.rt.start(cid)
                peer.start(cid)
            else:
                t.rt.kill(cid, "KILL")
                peer.kill(cid, "KILL")
                wait_for(lambda: t.rt.status(cid) == "stopped" and peer.status(cid) == "stopped")
            ro, rt_ = t.rt("state", cid), peer("state", cid)
            so, st = json.loads(ro.out), json.loads(rt_.out)
            assert so["status"] == phase, so
            _assert_same_state(so, st, bo, f"state/{phase}")
            # formatting: MarshalIndent, 2 spaces, no trailing newline
            assert ro.out == json.dumps(so, indent=2), ro.out
            assert ro.out.endswith("}") and rt_.out.endswith("}")
            lo, lt = t.rt("list", "--format", "json"), peer("list", "--format", "json")
            jo, jt = json.loads(lo.out), json.loads(lt.out)
            assert len(jo) == len(jt) == 1, (jo, jt)
            _assert_same_state(jo[0], jt[0], bo, f"list/{phase}")
            assert lo.out.endswith("\n") and "\n" not in lo.out[:-1], lo.out
            # table: same header, same columns
            to, tt = t.rt("list").out.split("\n"), peer("list").out.split("\n")
            assert to[0].split() == tt[0].split() == ["ID", "PID", "STATUS", "BUNDLE",
                                                      "CREATED", "OWNER"], (to[0], tt[0])
            assert to[1].split()[2] == tt[1].split()[2] == phase
    finally:
        t.rt.cleanup(cid)
        peer.cleanup(cid)


def test_compare_error_messages(t):
    peer = _peer(t)
    cases = [("state", "ghost"), ("kill", "ghost"), ("delete", "ghost"), ("start", "ghost"),
             ("delete", "--force", "ghost")]
    for args in cases:
        ro, rp = t.rt(*args, check=False), peer(*args, check=False)
        assert ro.rc == rp.rc, (args, ro, rp)
        assert log_messages(ro) == log_messages(rp), (args, ro.err, rp.err)


def test_compare_spec(t):
    peer = _peer(t)
    d1, d2 = t.path("s1"), t.path("s2")
    os.mkdir(d1)
    os.mkdir(d2)
    t.rt("spec", cwd=d1)
    peer("spec", cwd=d2)
    with open(os.path.join(d1, "config.json")) as f1, open(os.path.join(d2, "config.json")) as f2:
        c1, c2 = json.load(f1), json.load(f2)
    for c in (c1, c2):
        c.pop("ociVersion")
        c.pop("hostname")
        c.get("annotations", {}).pop("io.deltabox.snapshots", None)
        if c.get("annotations") == {}:
            c.pop("annotations")
    assert c1 == c2
