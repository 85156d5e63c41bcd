"""exec."""
import json
import os
import time

from lib import util
from lib.checks import assert_error, own_cgroup_pids
from lib.console import ConsoleSocket, pty_read_until, pty_write


def running(t, name=None, writable=False, args=("sleep", "1000")):
    """A running container (deleted by the test's finalizer)."""
    b = t.bundle(name, args=list(args))
    if writable:
        b.writable()
    b.write()
    cid = t.id(name or "c")
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    return cid, b


def test_exec_args_and_output(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "sh", "-c", "echo out-$((1+1)); echo err >&2")
    assert r.rc == 0 and r.out == "out-2\n" and r.err == "err\n", r


def test_exec_exit_status(t):
    cid, _ = running(t)
    for code in (0, 1, 7, 255):
        r = t.rt.exec(cid, "sh", "-c", f"exit {code}")
        assert r.rc == code, r


def test_exec_killed_by_signal(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "sh", "-c", "kill -KILL $$")
    assert r.rc == 137, r


def test_exec_stdin(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "cat", input="piped\n")
    assert r.rc == 0 and r.out == "piped\n", r


def test_exec_missing_executable_255(t):
    cid, _ = running(t)
    before = own_cgroup_pids(t)
    r = t.rt.exec(cid, "/does/not/exist")
    assert_error(r, 255, "exec failed", "no such file or directory")
    r = t.rt.exec(cid, "no-such-command")
    assert r.rc == 255, r
    assert own_cgroup_pids(t) == before, "a failed exec left processes"
    assert t.rt.status(cid) == "running"


def test_exec_joins_namespaces(t):
    cid, _ = running(t)
    init = t.rt.state(cid)["pid"]
    for ns in ("pid", "net", "ipc", "uts", "mnt"):
        want = os.readlink(f"/proc/{init}/ns/{ns}")
        r = t.rt.exec(cid, "readlink", f"/proc/self/ns/{ns}")
        assert r.rc == 0 and r.out.strip() == want, (ns, want, r)
    r = t.rt.exec(cid, "sh", "-c", "echo $$")
    assert r.rc == 0 and int(r.out) > 1, r


def test_exec_inherits_process_env_and_user(t):
    b = t.bundle(args=["sleep", "1000"])
    b.process["env"] = [b.process["env"][0], "FROMCONFIG=yes"]
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    r = t.rt.exec(cid, "sh", "-c", "echo $FROMCONFIG")
    assert r.out == "yes\n", r


def test_exec_env(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "sh", "-c", "echo $FOO-$BAR; echo $PATH", env=["FOO=foo", "BAR=b a r"])
    assert r.rc == 0, r
    lines = r.out.split("\n")
    assert lines[0] == "foo-b a r", r
    assert lines[1] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", r
    r = t.rt("exec", "-e", "X=1", cid, "sh", "-c", "echo $X", check=False)
    assert r.out == "1\n", r


def test_exec_env_overrides(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "sh", "-c", "echo $PATH", env=["PATH=/bin"])
    assert r.out == "/bin\n", r


def test_exec_cwd(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "pwd", cwd="/tmp")
    assert r.rc == 0 and r.out == "/tmp\n", r
    r = t.rt.exec(cid, "pwd")
    assert r.out == "/\n", r


def test_exec_user(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "id", user="1000:1000")
    assert r.rc == 0 and r.out == "uid=1000(app) gid=1000(app)\n", r
    r = t.rt.exec(cid, "sh", "-c", "id -u; id -g", user="1000")
    assert r.rc == 0 and r.out == "1000\n0\n", r
    r = t.rt.exec(cid, "id", user="1000:1000", additional_gids=[5, 100])
    assert r.rc == 0 and r.out == "uid=1000(app) gid=1000(app) groups=5,100\n", r
    r = t.rt.exec(cid, "id", "-u", user="65534:65534")
    assert r.out == "65534\n", r


def test_exec_user_name_not_supported(t):
    """runc resolves only numeric --user values: a name fails with 255."""
    cid, _ = running(t)
    r = t.rt.exec(cid, "id", user="app")
    assert_error(r, 255, "exec failed")


def test_exec_process_json(t):
    cid, _ = running(t)
    proc = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
        "args": ["sh", "-c", "id; pwd; echo $PJ; echo args=$#"],
        "env": ["PATH=/bin", "PJ=from-process-json"],
        "cwd": "/tmp",
        "noNewPrivileges": True,
    }
    p = t.path("process.json")
    with open(p, "w") as f:
        json.dump(proc, f)
    r = t.rt.exec(cid, process=p)
    assert r.rc == 0, r
    assert r.out == ("uid=1000(app) gid=1000(app) groups=5\n/tmp\nfrom-process-json\nargs=0\n"), r
    r = t.rt("exec", "-p", p, cid, check=False)
    assert r.rc == 0, r


def test_exec_process_json_exit_code(t):
    cid, _ = running(t)
    p = t.path("process.json")
    with open(p, "w") as f:
        json.dump({"args": ["/bin/sh", "-c", "exit 9"], "cwd": "/",
                   "user": {"uid": 0, "gid": 0}}, f)
    r = t.rt.exec(cid, process=p)
    assert r.rc == 9, r
    # a process.json without env has no PATH: a bare command name is not found
    with open(p, "w") as f:
        json.dump({"args": ["sh", "-c", "exit 9"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, f)
    r = t.rt.exec(cid, process=p)
    assert_error(r, 255, "executable file not found in $PATH")


def test_exec_process_json_invalid(t):
    cid, _ = running(t)
    p = t.path("bad.json")
    with open(p, "w") as f:
        f.write("{not json")
    r = t.rt.exec(cid, process=p)
    assert r.rc != 0, r
    r = t.rt.exec(cid, process=t.path("missing.json"))
    assert r.rc != 0, r
    assert t.rt.status(cid) == "running"


def test_exec_detached(t):
    cid, b = running(t, writable=True)
    t0 = time.monotonic()
    r = t.rt.exec(cid, "sh", "-c", "sleep 0.3; echo done > /tmp/marker", detach=True,
                  pid_file=t.path("exec.pid"))
    assert r.rc == 0 and time.monotonic() - t0 < 10, r
    pid = int(util.read_file(t.path("exec.pid")))
    assert not util.read_file(t.path("exec.pid")).endswith("\n")
    util.wait_for(lambda: util.read_file(b.file("tmp/marker"), "") == "done\n",
                  what="detached exec to finish")
    util.wait_pid_gone(pid)


def test_exec_pid_file(t):
    cid, _ = running(t)
    pf = t.path("e.pid")
    r = t.rt.exec(cid, "sleep", "1000", detach=True, pid_file=pf)
    assert r.rc == 0, r
    pid = int(util.read_file(pf))
    util.wait_for(lambda: util.read_file(f"/proc/{pid}/cmdline").split("\0")[:2]
                  == ["sleep", "1000"], what=f"pid {pid} to be the exec'd sleep")
    assert pid in t.rt.ps(cid).json()


def test_exec_preserve_fds(t):
    cid, _ = running(t)
    with open(t.path("fd3"), "w+") as f3, open(t.path("fd4"), "w+") as f4:
        f3.write("three\n")
        f3.flush()
        f3.seek(0)
        f4.write("four\n")
        f4.flush()
        f4.seek(0)
        r = t.rt.exec(cid, "sh", "-c", "cat <&3; cat <&4", preserve_fds=2,
                      fds={3: f3.fileno(), 4: f4.fileno()})
        assert r.rc == 0 and r.out == "three\nfour\n", r
        f3.seek(0)
        r = t.rt.exec(cid, "sh", "-c", "cat <&3", fds={3: f3.fileno()})
        assert r.rc != 0 and r.out == "", f"fd 3 leaked without --preserve-fds: {r!r}"


def test_exec_tty_detached_needs_console_socket(t):
    cid, _ = running(t)
    before = own_cgroup_pids(t)
    r = t.rt.exec(cid, "true", tty=True, detach=True)
    assert_error(r, 255, "cannot allocate tty if runc will detach without setting console socket")
    assert own_cgroup_pids(t) == before
    assert t.rt.status(cid) == "running"


def test_exec_console_socket_without_tty(t):
    cid, _ = running(t)
    with ConsoleSocket(t.path("cs.sock")) as cs:
        r = t.rt.exec(cid, "true", detach=True, console_socket=cs.path)
    assert_error(r, 255, "cannot use console socket if runc will not detach or allocate tty")


def test_exec_tty_console_socket(t):
    cid, _ = running(t)
    with ConsoleSocket(t.path("cs.sock")) as cs:
        r = t.rt.exec(cid, "sh", "-c", "tty; echo cols=$(stty size); read x; echo got-$x",
                      tty=True, detach=True, console_socket=cs.path, pid_file=t.path("p"))
        assert r.rc == 0, r
        m = cs.master()
        out = pty_read_until(m, "cols=")
        pty_write(m, "hello\n")
        out += pty_read_until(m, "got-hello")
        assert "/dev/pts/" in out, out
    util.wait_pid_gone(int(util.read_file(t.path("p"))))


def test_exec_in_created_container(t):
    """runc allows exec into a created (not yet started) container."""
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.create(cid, b)
    r = t.rt.exec(cid, "echo", "hi")
    assert r.rc == 0 and r.out == "hi\n", r
    assert t.rt.status(cid) == "created"


def test_exec_stopped_container(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run(cid, b, keep=True)
    r = t.rt.exec(cid, "true")
    assert_error(r, 255, "cannot exec in a stopped container")


def test_exec_capability_flag(t):
    cid, _ = running(t)
    r = t.rt.exec(cid, "grep", "CapEff", "/proc/self/status")
    base = int(r.out.split()[1], 16)
    r = t.rt.exec(cid, "grep", "CapEff", "/proc/self/status", caps=["CAP_SYS_ADMIN"])
    eff = int(r.out.split()[1], 16)
    assert eff == base | (1 << 21), (hex(base), hex(eff))


def test_exec_no_new_privs_inherits_config(t):
    b = t.bundle(args=["sleep", "1000"])
    b.process["noNewPrivileges"] = False
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    r = t.rt.exec(cid, "grep", "NoNewPrivs", "/proc/self/status")
    assert r.out.split() == ["NoNewPrivs:", "0"], r
    r = t.rt.exec(cid, "grep", "NoNewPrivs", "/proc/self/status", no_new_privs=True)
    assert r.out.split() == ["NoNewPrivs:", "1"], r
