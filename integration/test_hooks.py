"""OCI hooks: order, the state each one gets on stdin, env/args, failures and timeouts."""
import json
import os

from lib import util
from lib.checks import assert_nothing_left

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]

# One script serves every hook: it runs on the host (runtime namespace) or, for
# startContainer, inside the container through the /hooks bind mount. It appends one JSON
# line: {"hook": <argv[1]>, "env": $HOOKVAR, "state": <stdin>}.
SCRIPT = """#!/bin/sh
d=$(dirname "$0")
state=$(cat)
printf '{"hook": "%s", "env": "%s", "nargs": %s, "state": %s}\\n' "$1" "$HOOKVAR" "$#" "$state" >> "$d/log"
"""


def _hook_bundle(t, args=("sleep", "1000"), hooks=HOOKS, extra=None):
    hd = t.path("hooks")
    os.makedirs(hd, exist_ok=True)
    script = os.path.join(hd, "hook.sh")
    with open(script, "w") as f:
        f.write(SCRIPT)
    os.chmod(script, 0o755)
    b = t.bundle(args=list(args))
    b.add_mount("/hooks", "bind", hd, ["rbind", "rw"])
    b.config["annotations"] = {"org.example.hooked": "yes"}
    b.config["hooks"] = {}
    for h in hooks:
        # startContainer is resolved and run inside the container
        path = "/hooks/hook.sh" if h == "startContainer" else script
        b.config["hooks"][h] = [{"path": path, "args": [path, h], "env": [f"HOOKVAR=v-{h}"]}]
    for h, entry in (extra or {}).items():
        b.config["hooks"].setdefault(h, []).append(entry)
    return b.write(), os.path.join(hd, "log")


def _log(path):
    text = util.read_file(path, "")
    return [json.loads(ln) for ln in text.split("\n") if ln.strip()]


CREATE_PHASE = ["prestart", "createRuntime", "createContainer"]
# statuses on stdin as runc reports them (runtime-spec runtime.md)
WANT_STATUS = {"prestart": "creating", "createRuntime": "creating",
               "createContainer": "creating", "startContainer": "created",
               "poststart": "running", "poststop": "stopped"}


def _check_entry(e, cid, b, host_pid=None):
    st = e["state"]
    assert st["id"] == cid and st["bundle"] == b.path, e
    assert st["annotations"] == {"org.example.hooked": "yes"}, e
    assert e["env"] == f"v-{e['hook']}", e
    assert e["nargs"] == 1, e  # args[0] is argv[0]
    if e["hook"] in ("prestart", "createRuntime") and host_pid:
        assert st["pid"] == host_pid, e  # runtime-namespace hooks get the host pid
    if e["hook"] == "poststop":
        assert st.get("pid", 0) == 0, e


def test_hooks_create_phase(t):
    """create runs prestart, createRuntime, createContainer in order (status creating)."""
    b, log = _hook_bundle(t)
    cid = t.id()
    try:
        t.rt.create(cid, b)
        pid = t.rt.state(cid)["pid"]
        entries = _log(log)
        assert [e["hook"] for e in entries][:3] == CREATE_PHASE, entries
        for e in entries[:3]:
            assert e["state"]["status"] == "creating", e
            _check_entry(e, cid, b, pid)
        t.rt.start(cid)
        util.wait_for(lambda: {"startContainer", "poststart"} <= {e["hook"] for e in _log(log)},
                      what="startContainer and poststart")
        t.rt.delete(cid, force=True)
        entries = _log(log)
        assert entries[-1]["hook"] == "poststop", entries
        assert sorted(e["hook"] for e in entries) == sorted(HOOKS), entries
        for e in entries:
            _check_entry(e, cid, b, pid)
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_hooks_runc11_poststart_at_create(t):
    """Documents runc 1.1: poststart runs at the end of `create` (status created), before
    startContainer. (runc 1.2 and the spec run it after start.)"""
    if not t.is_runc:
        raise util.Skip("runc-only: documents a runc 1.1 deviation from the spec")
    b, log = _hook_bundle(t)
    cid = t.id()
    try:
        t.rt.create(cid, b)
        entries = _log(log)
        assert [e["hook"] for e in entries] == CREATE_PHASE + ["poststart"], entries
        assert entries[3]["state"]["status"] == "created", entries[3]
    finally:
        t.rt.cleanup(cid)


def test_hooks_spec_order_and_status(t):
    """Spec order: create -> prestart, createRuntime, createContainer; start ->
    startContainer (created), then poststart (running); delete -> poststop (stopped)."""
    t.runc_gap("runc 1.1 runs poststart during create, with status created")
    b, log = _hook_bundle(t)
    cid = t.id()
    try:
        t.rt.create(cid, b)
        pid = t.rt.state(cid)["pid"]
        assert [e["hook"] for e in _log(log)] == CREATE_PHASE, _log(log)
        t.rt.start(cid)
        util.wait_for(lambda: len(_log(log)) >= 5, what="startContainer and poststart")
        t.rt.delete(cid, force=True)
    finally:
        t.rt.cleanup(cid)
    entries = _log(log)
    assert [e["hook"] for e in entries] == HOOKS, entries
    for e in entries:
        assert e["state"]["status"] == WANT_STATUS[e["hook"]], e
        _check_entry(e, cid, b, pid)
    assert_nothing_left(t, cid, b)


def test_hooks_run_foreground(t):
    b, log = _hook_bundle(t, args=("true",))
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 0, r
    hooks = [e["hook"] for e in _log(log)]
    assert hooks[:3] == CREATE_PHASE and hooks[-1] == "poststop", hooks
    assert sorted(hooks) == sorted(HOOKS), hooks
    assert_nothing_left(t, cid, b)


def test_create_runtime_hook_sees_container_pid(t):
    """createRuntime runs in the runtime namespace once the container process exists."""
    b, log = _hook_bundle(t, hooks=["createRuntime"])
    cid = t.id()
    try:
        t.rt.create(cid, b)
        e = _log(log)[0]
        assert e["state"]["pid"] == t.rt.state(cid)["pid"] > 0, e
    finally:
        t.rt.cleanup(cid)


def test_failing_prestart_hook_aborts_create(t):
    b, log = _hook_bundle(t, hooks=["poststop"],
                          extra={"prestart": {"path": "/bin/sh",
                                              "args": ["sh", "-c", "exit 3"]}})
    cid = t.id()
    r = t.rt.create(cid, b, check=False)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_failing_create_container_hook_aborts_create(t):
    b, _ = _hook_bundle(t, hooks=[],
                        extra={"createContainer": {"path": "/bin/false", "args": ["false"]}})
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_failing_poststart_hook(t):
    """runc 1.1 runs poststart inside `create`, so a failing one fails create; either way
    the failure must not leave anything behind once the container is deleted."""
    b, _ = _hook_bundle(t, hooks=[],
                        extra={"poststart": {"path": "/bin/false", "args": ["false"]}})
    cid = t.id()
    try:
        r = t.rt.create(cid, b, check=False)
        if t.is_runc:
            assert r.rc == 1 and "error running hook" in r.err, r
        elif r.rc == 0:
            t.rt.start(cid, check=False)
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_failing_poststop_hook_only_warns(t):
    b, _ = _hook_bundle(t, args=("true",), hooks=[],
                        extra={"poststop": {"path": "/bin/false", "args": ["false"]}})
    cid = t.id()
    t.rt.run(cid, b, keep=True)
    r = t.rt.delete(cid, check=False)
    assert r.rc == 0, r
    assert_nothing_left(t, cid, b)


def test_hook_timeout(t):
    b, _ = _hook_bundle(t, hooks=[],
                        extra={"createRuntime": {"path": "/bin/sleep", "args": ["sleep", "30"],
                                                 "timeout": 1}})
    cid = t.id()
    r = t.rt.create(cid, b, check=False, timeout=25)
    assert r.rc == 1 and r.elapsed < 20, r
    assert "timeout" in r.err.lower() or "timed out" in r.err.lower(), r
    assert_nothing_left(t, cid, b)
