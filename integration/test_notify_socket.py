"""NOTIFY_SOCKET: the runtime proxies systemd's sd_notify protocol into the container (a socket
directory bind-mounted at /run/notify, NOTIFY_SOCKET in the environment) and forwards READY=1,
then MAINPID=<init's host pid>, then a BARRIER=1 carrying a pipe, to the host's socket."""
import array
import errno
import os
import socket
import threading
import time

from lib import util


def host_socket(t):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = t.path("host-notify.sock")
    s.bind(path)
    s.settimeout(20)
    t.defer(s.close)
    return s, path


def recv_message(s):
    """One datagram and the fds it carried (closed: that ends the runtime's barrier)."""
    fds = array.array("i")
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    for fd in fds:
        os.close(fd)
    return data.decode(), len(fds)


def send_ready(path, message=b"READY=1\n", timeout=20):
    """Sends to the container-side socket once `start` has bound it (the one `create` left has
    no reader: ECONNREFUSED)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        while True:
            try:
                c.sendto(message, path)
                return
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ECONNREFUSED) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def test_notify_socket_ready_forwarded(t):
    t.runc_gap("runc 1.1.5 forwards nothing to the host socket here (runc 1.2's proxy does)")
    host, host_path = host_socket(t)
    b = t.bundle(args=["sleep", "1000"])
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        r=t.rt.run(cid, b, detach=True, extra_env={"NOTIFY_SOCKET": host_path})))
    runner.start()
    try:
        # the container would send this itself; busybox has no unixgram client
        send_ready(os.path.join(t.root, cid, "notify", "notify.sock"))
        assert recv_message(host) == ("READY=1\n", 0)
        mainpid, _ = recv_message(host)
        barrier, nfds = recv_message(host)
    finally:
        runner.join(30)
    assert not runner.is_alive(), "run -d still waiting"
    assert result["r"].rc == 0, result["r"]
    assert mainpid == f"MAINPID={t.rt.state(cid)['pid']}\n"
    assert (barrier, nfds) == ("BARRIER=1", 1)
    r = t.rt.exec(cid, "sh", "-c", "echo $NOTIFY_SOCKET; ls /run/notify; "
                  "grep ' /run/notify ' /proc/self/mountinfo")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[:2] == ["/run/notify/notify.sock", "notify.sock"], r
    assert " ro," in lines[2] and "nosuid" in lines[2], r


def test_notify_socket_create_then_start(t):
    t.runc_gap("runc 1.1.5 forwards nothing to the host socket here (runc 1.2's proxy does)")
    host, host_path = host_socket(t)
    b = t.bundle(args=["sleep", "1000"])
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    env = {"NOTIFY_SOCKET": host_path}
    t.rt.create(cid, b, extra_env=env)
    assert os.path.isdir(os.path.join(t.root, cid, "notify"))
    result = {}
    starter = threading.Thread(target=lambda: result.update(r=t.rt.start(cid, extra_env=env, check=False)))
    starter.start()
    try:
        send_ready(os.path.join(t.root, cid, "notify", "notify.sock"), b"STATUS=x\nREADY=1\n")
        assert recv_message(host) == ("READY=1\n", 0)
        recv_message(host)
        recv_message(host)
    finally:
        starter.join(30)
    assert result["r"].rc == 0, result["r"]
    assert t.rt.status(cid) == "running"


def test_notify_socket_container_exits_without_ready(t):
    """Waiting ends when the container's init goes, in the foreground as well (no hang on the
    init's zombie, which `run` itself reaps afterwards)."""
    t.runc_gap("runc 1.1.5's foreground run waits forever on its init's zombie")
    host, host_path = host_socket(t)
    b = t.bundle(args=["sh", "-c", "exit 3"])
    b.write()
    t0 = time.monotonic()
    r = t.rt.run(t.id(), b, extra_env={"NOTIFY_SOCKET": host_path}, timeout=30)
    assert r.rc == 3, r
    assert time.monotonic() - t0 < 10
    host.settimeout(0.1)
    try:
        data = host.recv(4096)
    except socket.timeout:
        data = None
    assert data is None, data


def test_notify_socket_unset_no_mount(t):
    b = t.bundle(args=["sh", "-c", "echo ${NOTIFY_SOCKET:-none}; ls /run/notify 2>&1 || true"])
    b.write()
    r = t.rt.run(t.id(), b, extra_env={"NOTIFY_SOCKET": ""})
    assert r.rc == 0 and r.out.startswith("none\n") and "notify.sock" not in r.out, r
