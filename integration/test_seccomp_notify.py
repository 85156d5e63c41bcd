"""Seccomp user notification (linux.seccomp.listenerPath, SCMP_ACT_NOTIFY), as runc does it: the
runtime sends the agent at listenerPath the ContainerProcessState JSON with the notify fd
(SCM_RIGHTS), once for the init ("creating") and once per exec'd process ("running"); the agent
here answers notified mkdir calls through SECCOMP_IOCTL_NOTIF_RECV/SEND."""
import ctypes
import errno
import json
import os
import select
import socket
import threading

from lib import util
from lib.checks import assert_error, assert_nothing_left

_libc = ctypes.CDLL(None, use_errno=True)

# <linux/seccomp.h>, x86_64 layouts.
class _SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32), ("instruction_pointer", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _SeccompData)]


class _NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


def _iowr(nr, size):
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


NOTIF_RECV = _iowr(0, ctypes.sizeof(_Notif))
NOTIF_SEND = _iowr(1, ctypes.sizeof(_NotifResp))
SYS_MKDIR, SYS_MKDIRAT = 83, 258  # x86_64
METADATA = "agent-metadata-42"

_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


def _need_user_notif():
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            avail = f.read().split()
    except OSError:
        avail = []
    if "user_notif" not in avail:
        raise util.Skip("kernel lacks seccomp user notification")
    if os.uname().machine != "x86_64":
        raise util.Skip("the test agent knows x86_64 syscall numbers only")


class Agent:
    """Accepts connections on `path`; for each, records the JSON and answers the fd's
    notifications: the first mkdir gets EPERM, later ones a fake success (nothing created)."""

    def __init__(self, path):
        self.path = path
        self.messages = []
        self.notified = []  # (nr, pid)
        self.errors = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                with conn:
                    conn.settimeout(10)
                    msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
                    self.messages.append((json.loads(msg), len(fds)))
                for fd in fds[1:]:
                    os.close(fd)
                if fds:
                    th = threading.Thread(target=self._serve, args=(fds[0],), daemon=True)
                    self._threads.append(th)
                    th.start()
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))

    def _serve(self, fd):
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            while not self._stop.is_set():
                ev = p.poll(100)
                if not ev:
                    continue
                if ev[0][1] & select.POLLHUP:  # every process of the filter is gone
                    return
                req = _Notif()
                if _libc.ioctl(fd, NOTIF_RECV, ctypes.byref(req)) < 0:
                    err = ctypes.get_errno()
                    if err in (errno.EINTR, errno.ENOENT):
                        continue
                    self.errors.append(f"NOTIF_RECV: {os.strerror(err)}")
                    return
                self.notified.append((req.data.nr, req.pid))
                resp = _NotifResp(id=req.id, val=0, flags=0)
                mkdirs = sum(1 for nr, _ in self.notified if nr in (SYS_MKDIR, SYS_MKDIRAT))
                resp.error = -errno.EPERM if mkdirs <= 1 else 0
                if _libc.ioctl(fd, NOTIF_SEND, ctypes.byref(resp)) < 0:
                    err = ctypes.get_errno()
                    if err != errno.ENOENT:  # the caller died meanwhile
                        self.errors.append(f"NOTIF_SEND: {os.strerror(err)}")
        finally:
            os.close(fd)

    def wait_messages(self, n, timeout=10):
        util.wait_for(lambda: len(self.messages) >= n, timeout=timeout, what=f"{n} agent message(s)")

    def close(self):
        self._stop.set()
        self._sock.close()
        for th in self._threads:
            th.join(timeout=5)


def _notify_bundle(t, args, listener, nnp=True):
    b = t.bundle(args=args)
    b.process["noNewPrivileges"] = nnp
    b.config["annotations"] = {"org.example.test": "seccomp-notify"}
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "listenerPath": listener,
                          "listenerMetadata": METADATA,
                          "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    b.write()
    return b


def _check_message(msg, nfds, cid, b, status, pid, state_pid):
    assert nfds == 1, msg
    assert msg["fds"] == ["seccompFd"], msg
    assert msg["metadata"] == METADATA, msg
    assert msg["pid"] == pid, msg
    assert msg["ociVersion"], msg
    st = msg["state"]
    assert st["id"] == cid and st["status"] == status and st["pid"] == state_pid, msg
    assert st["bundle"] == b.path, msg
    assert st.get("annotations") == {"org.example.test": "seccomp-notify"}, msg


SCRIPT = ("mkdir /x; echo rc1=$?; mkdir /y; echo rc2=$?; "
          "if test -d /y; then echo y-exists; else echo y-absent; fi; echo done")


def _run_with_agent(t, nnp):
    _need_user_notif()
    agent = Agent(t.path("agent.sock"))
    t.defer(agent.close)
    b = _notify_bundle(t, ["sh", "-c", SCRIPT], agent.path, nnp=nnp)
    cid = t.id()
    pid_file = t.path("init.pid")
    r = t.rt.run(cid, b, pid_file=pid_file)
    assert r.rc == 0, r
    assert "Operation not permitted" in r.err, r
    assert "rc1=1" in r.out and "rc2=0" in r.out and "y-absent" in r.out and "done" in r.out, r
    agent.wait_messages(1)
    assert not agent.errors, agent.errors
    assert len(agent.messages) == 1, agent.messages
    init_pid = int(open(pid_file).read())
    msg, nfds = agent.messages[0]
    _check_message(msg, nfds, cid, b, "creating", init_pid, init_pid)
    assert [nr for nr, _ in agent.notified if nr in (SYS_MKDIR, SYS_MKDIRAT)], agent.notified
    assert not os.path.exists(os.path.join(b.rootfs, "x"))
    assert not os.path.exists(os.path.join(b.rootfs, "y"))
    assert_nothing_left(t, cid, b)


def test_seccomp_notify_agent_answers(t):
    _run_with_agent(t, nnp=True)


def test_seccomp_notify_agent_answers_without_nnp(t):
    _run_with_agent(t, nnp=False)


def test_seccomp_notify_agent_absent(t):
    _need_user_notif()
    b = _notify_bundle(t, ["sh", "-c", SCRIPT], t.path("nobody.sock"))
    cid = t.id()
    r = t.rt.create(cid, b, check=False)
    assert_error(r, 1, "failed to connect with seccomp agent specified in the seccomp profile",
                 t.path("nobody.sock"))
    assert_nothing_left(t, cid, b)


def test_seccomp_notify_exec(t):
    _need_user_notif()
    agent = Agent(t.path("agent.sock"))
    t.defer(agent.close)
    b = _notify_bundle(t, ["sleep", "100"], agent.path)
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    agent.wait_messages(1)
    init_pid = t.rt.state(cid)["pid"]
    _check_message(*agent.messages[0], cid, b, "creating", init_pid, init_pid)

    proc = t.path("process.json")
    with open(proc, "w") as f:
        json.dump({"args": ["sh", "-c", SCRIPT], "cwd": "/", "env": ["PATH=/bin:/sbin:/usr/bin"],
                   "user": {"uid": 0, "gid": 0}, "noNewPrivileges": True}, f)
    exec_pid_file = t.path("exec.pid")
    r = t.rt.exec(cid, process=proc, pid_file=exec_pid_file)
    assert r.rc == 0, r
    assert "Operation not permitted" in r.err and "rc1=1" in r.out and "y-absent" in r.out, r
    agent.wait_messages(2)
    exec_pid = int(open(exec_pid_file).read())
    assert exec_pid != init_pid
    _check_message(*agent.messages[1], cid, b, "running", exec_pid, init_pid)
    assert not agent.errors, agent.errors
    assert t.rt.status(cid) == "running"


def test_seccomp_notify_exec_agent_gone(t):
    _need_user_notif()
    agent = Agent(t.path("agent.sock"))
    b = _notify_bundle(t, ["sleep", "100"], agent.path)
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b)
    agent.wait_messages(1)
    agent.close()
    os.unlink(agent.path)
    r = t.rt.exec(cid, "true")
    assert r.rc != 0, r
    assert "failed to connect with seccomp agent" in r.err, r
    assert t.rt.status(cid) == "running"
    pids = [p for p in json.loads(t.rt.ps(cid).out)]
    assert pids == [t.rt.state(cid)["pid"]], pids


def test_seccomp_notify_features(t):
    actions = json.loads(t.rt("features").out)["linux"]["seccomp"]["actions"]
    assert "SCMP_ACT_NOTIFY" in actions, actions
