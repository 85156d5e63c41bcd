"""linux.personality, process.scheduler, process.ioPriority and process.execCPUAffinity: applied
to the container's init and to exec'd processes, read back from the host; bad values fail up
front with runc's texts and leave nothing behind. runc 1.1 has none of these (1.2 added them)."""
import ctypes
import json
import os

from lib import util
from lib.checks import assert_error, assert_nothing_left, own_cgroup_pids

SYS_IOPRIO_GET = 252  # x86_64
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5

_libc = ctypes.CDLL(None, use_errno=True)


def _gap(t):
    t.runc_gap("runc 1.1 ignores personality, scheduler, ioPriority and execCPUAffinity")


def ioprio(pid):
    """ioprio_get(IOPRIO_WHO_PROCESS, pid) as (class, data)."""
    v = _libc.syscall(SYS_IOPRIO_GET, IOPRIO_WHO_PROCESS, pid)
    assert v >= 0, os.strerror(ctypes.get_errno())
    return v >> 13, v & 0x1fff


def sched(pid):
    """(policy, nice) from /proc/<pid>/stat: fields 41 and 19 (1-based)."""
    fields = util.read_file(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state)
    return int(fields[41 - 3]), int(fields[19 - 3])


def running(t, b, cid=None):
    cid = cid or t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    return cid, t.rt.state(cid)["pid"]


def sleeper(t):
    b = t.bundle(args=["sleep", "1000"])
    b.write()
    return running(t, b)


def write_process(t, name, **extra):
    proc = {"args": ["sleep", "1000"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    proc.update(extra)
    p = t.path(name)
    with open(p, "w") as f:
        json.dump(proc, f)
    return p


def exec_detached(t, cid, process):
    pid_file = t.path("exec.pid")
    r = t.rt.exec(cid, process=process, detach=True, pid_file=pid_file)
    assert r.rc == 0, r
    return int(util.read_file(pid_file))


# ---- personality ---------------------------------------------------------------------------


def test_personality_linux32_uname(t):
    _gap(t)
    b = t.bundle(args=["uname", "-m"])
    b.linux["personality"] = {"domain": "LINUX32"}
    b.write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "i686\n", r


def test_personality_linux32_exec(t):
    """An exec'd process gets the container's execution domain too (runc's setns init)."""
    _gap(t)
    b = t.bundle(args=["sleep", "1000"])
    b.linux["personality"] = {"domain": "LINUX32"}
    b.write()
    cid, _ = running(t, b)
    r = t.rt.exec(cid, "uname", "-m")
    assert r.rc == 0 and r.out == "i686\n", r


def test_personality_linux_default(t):
    b = t.bundle(args=["uname", "-m"])
    b.linux["personality"] = {"domain": "LINUX"}
    b.write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == os.uname().machine + "\n", r


def test_personality_flag_refused(t):
    t.only_deltabox("runc warns about and ignores personality flags; the spec defines none")
    b = t.bundle(args=["true"])
    b.linux["personality"] = {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, 'linux.personality.flags[0]: unknown flag "ADDR_NO_RANDOMIZE"')
    assert_nothing_left(t, cid, b)


# ---- scheduler and ioPriority of the init ------------------------------------------------------


def test_init_scheduler_batch_nice_and_io_priority(t):
    _gap(t)
    b = t.bundle(args=["sleep", "1000"])
    b.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    b.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    b.write()
    _, pid = running(t, b)
    assert sched(pid) == (SCHED_BATCH, 7)
    assert ioprio(pid) == (IOPRIO_CLASS["IOPRIO_CLASS_BE"], 6)


def test_init_scheduler_inherited_by_children(t):
    """Set before execve without SCHED_FLAG_RESET_ON_FORK: the process's children keep it."""
    _gap(t)
    b = t.bundle(args=["sh", "-c", "cat /proc/self/stat"])
    b.process["scheduler"] = {"policy": "SCHED_IDLE"}
    b.process["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    b.write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0, r
    fields = r.out.rsplit(")", 1)[1].split()
    assert int(fields[41 - 3]) == SCHED_IDLE, r.out


def test_init_without_settings_keeps_defaults(t):
    b = t.bundle(args=["sleep", "1000"])
    b.write()
    _, pid = running(t, b)
    assert sched(pid) == (SCHED_OTHER, 0)


def test_init_cpu_affinity_reset(t):
    """The init does not keep the CLI's CPU affinity (runc's tryResetCPUAffinity)."""
    _gap(t)
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        util.skip("needs 2 CPUs")
    b = t.bundle(args=["sleep", "1000"])
    b.write()
    os.sched_setaffinity(0, {min(cpus)})
    try:
        _, pid = running(t, b)
    finally:
        os.sched_setaffinity(0, cpus)
    assert os.sched_getaffinity(pid) == cpus


# ---- exec ----------------------------------------------------------------------------------


def test_exec_process_json_scheduler_io_priority_affinity(t):
    _gap(t)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        util.skip("needs 2 CPUs")
    cid, init = sleeper(t)
    p = write_process(t, "p.json",
                      scheduler={"policy": "SCHED_BATCH", "nice": 3},
                      ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 2},
                      execCPUAffinity={"initial": str(cpus[0]), "final": str(cpus[-1])})
    pid = exec_detached(t, cid, p)
    assert sched(pid) == (SCHED_BATCH, 3)
    assert ioprio(pid) == (IOPRIO_CLASS["IOPRIO_CLASS_BE"], 2)
    assert os.sched_getaffinity(pid) == {cpus[-1]}
    # the container's init is untouched
    assert sched(init) == (SCHED_OTHER, 0)


def test_exec_cpu_affinity_initial_only_is_reset(t):
    """Without `final`, the process does not keep `initial`: it gets the cgroup's CPUs."""
    _gap(t)
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        util.skip("needs 2 CPUs")
    cid, _ = sleeper(t)
    p = write_process(t, "p.json", execCPUAffinity={"initial": str(min(cpus))})
    pid = exec_detached(t, cid, p)
    assert os.sched_getaffinity(pid) == cpus
    # the runtime's own affinity (the CLI's, inherited from us) was not narrowed for good
    r = t.rt.exec(cid, "grep", "Cpus_allowed_list", "/proc/self/status")
    assert r.rc == 0, r


def test_exec_inherits_scheduler_from_config(t):
    """Without -p, exec starts from the container's process, scheduler included."""
    _gap(t)
    b = t.bundle(args=["sleep", "1000"])
    b.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 4}
    b.write()
    cid, _ = running(t, b)
    r = t.rt.exec(cid, "cat", "/proc/self/stat")
    assert r.rc == 0, r
    fields = r.out.rsplit(")", 1)[1].split()
    assert (int(fields[41 - 3]), int(fields[19 - 3])) == (SCHED_BATCH, 4), r.out


# ---- bad values ----------------------------------------------------------------------------

BAD_CREATE = [
    ({"scheduler": {"policy": "SCHED_OTHER", "priority": 5}},
     "scheduler.priority can only be specified for SchedFIFO or SchedRR policy"),
    ({"scheduler": {"policy": "SCHED_BATCH", "nice": 30}},
     "invalid scheduler.nice: 30"),
    ({"scheduler": {"policy": "SCHED_RR", "runtime": 100}},
     "scheduler runtime/deadline/period can only be specified for SchedDeadline policy"),
    ({"execCPUAffinity": {"initial": "5-3"}},
     'invalid CPU list "5-3"'),
]


def test_bad_values_refused_at_create(t):
    _gap(t)
    for i, (process, text) in enumerate(BAD_CREATE):
        b = t.bundle(f"b{i}", args=["true"])
        b.process.update(process)
        b.write()
        cid = t.id(f"c{i}")
        r = t.rt.run(cid, b)
        assert_error(r, 1, text)
        assert_nothing_left(t, cid, b)


def test_unknown_policy_refused_at_create(t):
    _gap(t)
    b = t.bundle(args=["true"])
    b.process["scheduler"] = {"policy": "SCHED_NOPE"}
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1 and "SCHED_NOPE" in r.err, r
    assert_nothing_left(t, cid, b)


def test_kernel_refusal_fails_create(t):
    """Values only the kernel checks (a SCHED_FIFO priority of 0) fail create, not start."""
    _gap(t)
    b = t.bundle(args=["true"])
    b.process["scheduler"] = {"policy": "SCHED_FIFO", "priority": 0}
    b.write()
    cid = t.id()
    r = t.rt("create", "--bundle", b.path, cid, check=False)
    assert_error(r, 1, "error setting scheduler: invalid argument")
    assert_nothing_left(t, cid, b)


def test_exec_bad_values_refused(t):
    _gap(t)
    cid, _ = sleeper(t)
    before = own_cgroup_pids(t)
    cases = [
        ({"scheduler": {"policy": "SCHED_OTHER", "nice": -30}}, "invalid scheduler.nice: -30"),
        ({"execCPUAffinity": {"final": "0-"}}, 'invalid CPU list "0-"'),
        ({"execCPUAffinity": {"final": "60000"}}, "error setting final CPU affinity"),
        ({"scheduler": {"policy": "SCHED_FIFO", "priority": 0}}, "error setting scheduler"),
    ]
    for i, (extra, text) in enumerate(cases):
        r = t.rt.exec(cid, process=write_process(t, f"p{i}.json", **extra))
        assert_error(r, 255, text)
    assert own_cgroup_pids(t) == before, "a refused exec left processes"
    assert t.rt.status(cid) == "running"


# ---- seccomp user notification (the agent itself: test_seccomp_notify.py) ----------


def _notify_bundle(t, listener=None):
    b = t.bundle(args=["true"])
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
    if listener:
        b.linux["seccomp"]["listenerPath"] = listener
    b.write()
    return b


def test_seccomp_notify_without_listener_refused(t):
    b = _notify_bundle(t)
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "listenerPath is not set")
    assert_nothing_left(t, cid, b)


def test_features_reports_seccomp_notify(t):
    actions = json.loads(t.rt("features").out)["linux"]["seccomp"]["actions"]
    assert "SCMP_ACT_NOTIFY" in actions and "SCMP_ACT_ERRNO" in actions, actions
