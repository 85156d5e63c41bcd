"""Bad input and wrong states: exact exit codes and messages, and nothing left behind."""
import json
import os

from lib import util
from lib.checks import assert_error, assert_nothing_left, log_messages, own_cgroup_pids


def test_unknown_id(t):
    cid = t.id("ghost")
    for verb in (["state"], ["kill"], ["delete"], ["start"], ["ps"], ["kill", "--all"],
                 ["pause"], ["resume"]):
        r = t.rt(*verb, cid, check=False)
        assert_error(r, 1, "container does not exist")
    r = t.rt.exec(cid, "true")
    assert_error(r, 255, "container does not exist")
    assert os.listdir(t.root) == []


def test_delete_force_unknown_id(t):
    r = t.rt.delete(t.id("ghost"), force=True, check=False)
    assert r.rc == 0 and r.out == "" and r.err == "", r


def test_delete_force_removes_stale_state_dir(t):
    """delete --force of an id whose state dir exists but is unusable removes the dir."""
    cid = t.id("stale")
    os.makedirs(os.path.join(t.root, cid))
    r = t.rt.delete(cid, force=True, check=False)
    assert r.rc == 0, r
    assert cid not in os.listdir(t.root)


def test_malformed_config_json(t):
    b = t.bundle()
    cid = t.id()
    b.write(raw='{"ociVersion": "1.0.2", "process": ')
    r = t.rt.create(cid, b, check=False)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)
    b.write(raw="not json at all")
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_config_wrong_types(t):
    b = t.bundle()
    b.config["process"]["args"] = "sh -c true"  # must be an array
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_args_missing(t):
    b = t.bundle()
    del b.config["process"]["args"]
    b.write()
    cid = t.id()
    r = t.rt.create(cid, b, check=False)
    assert_error(r, 1, "args must not be empty" if t.is_runc else "process.args: must be a non-empty array of strings")
    assert_nothing_left(t, cid, b)
    b.config["process"]["args"] = []
    b.write()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "args must not be empty" if t.is_runc else "process.args: must be a non-empty array of strings")
    assert_nothing_left(t, cid, b)


def test_process_missing(t):
    b = t.bundle()
    del b.config["process"]
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_config_missing(t):
    b = t.bundle()
    cid = t.id()
    r = t.rt.create(cid, b, check=False)
    assert_error(r, 1, "JSON specification file config.json not found")
    assert_nothing_left(t, cid, b)


def test_bundle_missing(t):
    cid = t.id()
    r = t.rt("create", "--bundle", t.path("nope"), cid, check=False)
    assert r.rc == 1, r
    assert_nothing_left(t, cid)


def test_executable_missing(t):
    b = t.bundle(args=["/no/such/binary"]).write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "no such file or directory")
    assert_nothing_left(t, cid, b)
    r = t.rt.create(cid, b, check=False)
    # runc 1.1 checks the executable at create time
    assert_error(r, 1, "no such file or directory")
    assert_nothing_left(t, cid, b)


def test_executable_not_in_path(t):
    b = t.bundle(args=["no-such-cmd"]).write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "executable file not found in $PATH")
    assert_nothing_left(t, cid, b)


def test_executable_not_executable(t):
    b = t.bundle(args=["/etc/passwd"]).write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "permission denied")
    assert_nothing_left(t, cid, b)


def test_start_twice(t):
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    try:
        t.rt.create(cid, b)
        t.rt.start(cid)
        r = t.rt.start(cid, check=False)
        assert_error(r, 1, "cannot start an already running container")
        assert t.rt.status(cid) == "running"
    finally:
        t.rt.cleanup(cid)


def test_start_stopped(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    try:
        t.rt.run(cid, b, keep=True)
        r = t.rt.start(cid, check=False)
        assert_error(r, 1, "cannot start a container that has stopped")
    finally:
        t.rt.cleanup(cid)


def test_same_id_twice(t):
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    try:
        t.rt.create(cid, b)
        pid = t.rt.state(cid)["pid"]
        r = t.rt.create(cid, b, check=False)
        assert_error(r, 1, "container with given ID already exists")
        r = t.rt.run(cid, b)
        assert_error(r, 1, "container with given ID already exists")
        st = t.rt.state(cid)
        assert st["status"] == "created" and st["pid"] == pid, st
        assert os.listdir(t.root) == [cid]
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_invalid_ids(t):
    b = t.bundle(args=["true"]).write()
    for cid in ("bad/id", "..", ".", "a b", "a:b", "\u00e9"):
        r = t.rt.create(cid, b, check=False)
        assert_error(r, 1, "invalid container ID format")
    assert os.listdir(t.root) == []


def test_id_characters_allowed(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id("A_b.c+d-9")
    r = t.rt.run(cid, b)
    assert r.rc == 0, r
    assert_nothing_left(t, cid, b)


def test_delete_running_without_force(t):
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        r = t.rt.delete(cid, check=False)
        assert_error(r, 1, f"cannot delete container {cid} that is not stopped: running")
        assert t.rt.status(cid) == "running"
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_failing_exec_leaves_nothing(t):
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        before = own_cgroup_pids(t)
        for args in (["/nope"], ["sh", "-c", "exit 0"]):
            t.rt.exec(cid, *args, user="1000:1000", cwd="/nonexistent-dir")
        r = t.rt.exec(cid, "/nope")
        assert r.rc == 255, r
        assert own_cgroup_pids(t) == before
        assert sorted(os.listdir(t.root)) == [cid]
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_usage_errors(t):
    r = t.rt("kill", check=False)
    assert r.rc == 1 and "requires a minimum of 1 argument" in r.err, r
    r = t.rt("state", check=False)
    assert r.rc == 1 and "requires exactly 1 argument" in r.err, r
    r = t.rt("start", check=False)
    assert r.rc == 1, r
    r = t.rt("delete", check=False)
    assert r.rc == 1, r


def test_unknown_command(t):
    r = t.rt("frobnicate", check=False)
    assert r.rc == 3, r
    assert "No help topic for 'frobnicate'" in r.err, r


def test_bad_log_format(t):
    r = t.rt("--log-format", "xml", "list", check=False)
    assert_error(r, 1, "invalid log-format: xml")


def test_json_log_file(t):
    """--log FILE --log-format json: one JSON object per line with level/msg/time; the error
    also reaches stderr."""
    log = t.path("log.json")
    r = t.rt("state", t.id("ghost"), check=False, log=log)
    assert r.rc == 1, r
    lines = [ln for ln in util.read_file(log).split("\n") if ln]
    assert lines, "nothing logged"
    last = json.loads(lines[-1])
    assert last["level"] == "error" and last["msg"] == "container does not exist", last
    assert "time" in last
    assert "container does not exist" in r.err, r


def test_json_log_single_line_on_error(t):
    """Podman parses the whole log as one JSON object: a simple failure logs exactly one line."""
    log = t.path("log.json")
    b = t.bundle(args=["true"])
    b.config["root"]["path"] = "missing"
    b.write()
    r = t.rt.create(t.id(), b, check=False, log=log)
    assert r.rc == 1, r
    lines = [ln for ln in util.read_file(log).split("\n") if ln]
    assert len(lines) == 1, lines
    assert json.loads(lines[0])["level"] == "error"


def test_text_log_format(t):
    r = t.rt("state", t.id("ghost"), check=False)
    assert log_messages(r) == ["container does not exist"], r
    assert r.err.startswith('time="') and 'level=error msg="container does not exist"' in r.err, r


def test_root_must_not_be_slash(t):
    t.runc_gap("--root / is only rejected from runc 1.2 on")
    from lib.runtime import Runtime
    r = Runtime(t.rt.path, "/", tmpdir=t.tmp)("list", check=False)
    assert_error(r, 1, "Option --root argument should not be set to /")


def test_version(t):
    r = t.rt("--version")
    lines = r.out.split("\n")
    assert lines[0].startswith("runc version ") or lines[0].startswith("deltabox version "), r
    assert any(ln.startswith("spec: ") for ln in lines), r
    r2 = t.rt("-v")
    assert r2.out == r.out
