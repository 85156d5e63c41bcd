"""cgroups (v1 controllers of this hybrid host): placement, linux.resources, update, events.

runc puts a container without cgroupsPath at <its own cgroup>/<id> in every v1 hierarchy; a
relative cgroupsPath is also taken relative to its own cgroup and an absolute one from the
hierarchy root. (Its cgroup2 part on a hybrid host goes to /<path> from the root: not checked.)
"""
import json
import os

from lib import util
from lib.checks import assert_error, assert_nothing_left

CG = util.CGROUP_ROOT
V1 = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


def cgroup_of(pid):
    """{controller-or-name: path} from /proc/<pid>/cgroup (v1 lines only)."""
    res = {}
    for line in util.read_file(f"/proc/{pid}/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        if not ctrls:
            continue
        for c in ctrls.split(","):
            res[c.replace("name=", "")] = path
    return res


def cg_file(pid, ctrl, name):
    return os.path.join(CG, ctrl, cgroup_of(pid)[ctrl].lstrip("/"), name)


def _available(ctrls):
    missing = [c for c in ctrls if not os.path.isdir(os.path.join(CG, c))]
    if missing:
        raise util.Skip(f"cgroup v1 controllers not mounted: {missing}")


def _running(t, b, cid):
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    return t.rt.state(cid)["pid"]


def test_default_cgroup_path(t):
    _available(["memory", "pids"])
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    pid = _running(t, b, cid)
    cg = cgroup_of(pid)
    for c in V1:
        if c in cg:
            assert cg[c] == f"{t.cgroup}/{cid}", (c, cg)
            assert os.path.isdir(os.path.join(CG, c, cg[c].lstrip("/")))
    t.rt.delete(cid, force=True)
    for c in V1:
        assert not os.path.exists(os.path.join(CG, c, t.cgroup.lstrip("/"), cid)), c
    assert_nothing_left(t, cid, b)


def test_cgroups_path_absolute(t):
    b = t.bundle(args=["sleep", "1000"])
    b.linux["cgroupsPath"] = t.cgroup_path("abs-leaf")
    b.write()
    cid = t.id()
    pid = _running(t, b, cid)
    assert cgroup_of(pid)["memory"] == t.cgroup_path("abs-leaf")
    t.rt.delete(cid, force=True)
    assert not os.path.exists(os.path.join(CG, "memory", t.cgroup_path("abs-leaf").lstrip("/")))


def test_cgroups_path_relative(t):
    b = t.bundle(args=["sleep", "1000"])
    b.linux["cgroupsPath"] = "rel-leaf"
    b.write()
    cid = t.id()
    pid = _running(t, b, cid)
    assert cgroup_of(pid)["memory"] == f"{t.cgroup}/rel-leaf", cgroup_of(pid)
    t.rt.delete(cid, force=True)


def test_exec_joins_container_cgroup(t):
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    pid = _running(t, b, cid)
    r = t.rt.exec(cid, "cat", "/proc/self/cgroup")
    assert r.rc == 0, r
    ours = {ln.split(":", 2)[1]: ln.split(":", 2)[2] for ln in r.out.split("\n")
            if ln and ln.split(":", 2)[1]}
    init = {ln.split(":", 2)[1]: ln.split(":", 2)[2]
            for ln in util.read_file(f"/proc/{pid}/cgroup").splitlines() if ln.split(":", 2)[1]}
    assert ours == init, (ours, init)


def test_memory_limit(t):
    _available(["memory"])
    b = t.bundle(args=["sleep", "1000"])
    b.linux["resources"]["memory"] = {"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024}
    b.write()
    pid = _running(t, b, t.id())
    assert util.read_file(cg_file(pid, "memory", "memory.limit_in_bytes")).strip() == \
        str(64 * 1024 * 1024)
    assert util.read_file(cg_file(pid, "memory", "memory.soft_limit_in_bytes")).strip() == \
        str(32 * 1024 * 1024)


def test_memory_limit_enforced(t):
    _available(["memory"])
    b = t.bundle(args=["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64; echo rc=$?"])
    b.linux["resources"]["memory"] = {"limit": 16 * 1024 * 1024, "swap": 16 * 1024 * 1024}
    b.write()
    r = t.rt.run(t.id(), b)
    # the shell (pid 1) or dd is OOM-killed, or dd fails: never 64 MiB written successfully
    assert "rc=0" not in r.out, r


def test_pids_limit(t):
    _available(["pids"])
    b = t.bundle(args=["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 100 & done; "
                       "echo spawned; sleep 0.2; ps -o pid | wc -l"])
    b.linux["resources"]["pids"] = {"limit": 5}
    b.write()
    r = t.rt.run(t.id(), b)
    assert "can't fork" in r.err or "Resource temporarily unavailable" in r.err, r


def test_pids_limit_reads_back(t):
    _available(["pids"])
    b = t.bundle(args=["sleep", "1000"])
    b.linux["resources"]["pids"] = {"limit": 42}
    b.write()
    pid = _running(t, b, t.id())
    assert util.read_file(cg_file(pid, "pids", "pids.max")).strip() == "42"


def test_cpu_settings(t):
    _available(["cpu", "cpuset"])
    b = t.bundle(args=["sleep", "1000"])
    b.linux["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000,
                                   "cpus": "0", "mems": "0"}
    b.write()
    pid = _running(t, b, t.id())
    assert util.read_file(cg_file(pid, "cpu", "cpu.shares")).strip() == "512"
    assert util.read_file(cg_file(pid, "cpu", "cpu.cfs_quota_us")).strip() == "50000"
    assert util.read_file(cg_file(pid, "cpu", "cpu.cfs_period_us")).strip() == "100000"
    assert util.read_file(cg_file(pid, "cpuset", "cpuset.cpus")).strip() == "0"
    assert util.proc_status(pid)["Cpus_allowed_list"] == "0"


def test_cpuset_inherited_when_unset(t):
    """A new cpuset cgroup gets the parent's cpus/mems (or the task could not be attached)."""
    _available(["cpuset"])
    b = t.bundle(args=["sleep", "1000"]).write()
    pid = _running(t, b, t.id())
    parent = os.path.join(CG, "cpuset", t.cgroup.lstrip("/"))
    assert util.read_file(cg_file(pid, "cpuset", "cpuset.cpus")).strip() == \
        util.read_file(os.path.join(parent, "cpuset.cpus")).strip()


def test_update_memory_and_pids(t):
    _available(["memory", "pids"])
    b = t.bundle(args=["sleep", "1000"])
    b.linux["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    b.write()
    cid = t.id()
    pid = _running(t, b, cid)
    t.rt("update", "--memory", str(128 * 1024 * 1024), "--pids-limit", "77", cid)
    assert util.read_file(cg_file(pid, "memory", "memory.limit_in_bytes")).strip() == \
        str(128 * 1024 * 1024)
    assert util.read_file(cg_file(pid, "pids", "pids.max")).strip() == "77"


def test_update_resources_stdin(t):
    """containerd/go-runc style: update --resources=- with a LinuxResources JSON on stdin."""
    _available(["pids", "cpu"])
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    pid = _running(t, b, cid)
    res = {"pids": {"limit": 33}, "cpu": {"shares": 256}}
    t.rt("update", "--resources=-", cid, input=json.dumps(res))
    assert util.read_file(cg_file(pid, "pids", "pids.max")).strip() == "33"
    assert util.read_file(cg_file(pid, "cpu", "cpu.shares")).strip() == "256"
    # Podman style: a file
    p = t.path("res.json")
    with open(p, "w") as f:
        json.dump({"pids": {"limit": 34}}, f)
    t.rt("update", "--resources", p, cid)
    assert util.read_file(cg_file(pid, "pids", "pids.max")).strip() == "34"


def test_update_unknown_container(t):
    r = t.rt("update", "--memory", "1000000", t.id("ghost"), check=False)
    assert_error(r, 1, "container does not exist")


def test_events_stats(t):
    _available(["memory"])
    b = t.bundle(args=["sleep", "1000"])
    b.linux["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    b.write()
    cid = t.id()
    _running(t, b, cid)
    r = t.rt("events", "--stats", cid)
    ev = json.loads(r.out)
    assert ev["type"] == "stats" and ev["id"] == cid, ev
    assert ev["data"]["memory"]["usage"]["limit"] == 64 * 1024 * 1024, ev["data"]["memory"]
    assert ev["data"]["pids"]["current"] >= 1, ev["data"].get("pids")
    assert ev["data"]["cpu"]["usage"]["total"] > 0


def test_devices_cgroup_rules(t):
    _available(["devices"])
    b = t.bundle(args=["sleep", "1000"]).write()
    pid = _running(t, b, t.id())
    rules = util.read_file(cg_file(pid, "devices", "devices.list")).split("\n")
    assert "a *:* rwm" not in rules, rules
    for dev in ("c 1:3 rwm", "c 1:5 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm",
                "c 136:* rwm"):
        assert dev in rules, (dev, rules)
