"""A --console-socket receiver: listens on an AF_UNIX stream socket, accepts one connection,
and receives the pty master over SCM_RIGHTS (runc's protocol, docs/terminals.md)."""
import os
import select
import socket
import threading
import time


class ConsoleSocket:
    """with ConsoleSocket(path) as cs: rt.create(..., console_socket=cs.path); m = cs.master()"""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.payloads = []
        self.fds = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._stop = False
        self._cond = threading.Condition()
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
                except OSError:
                    continue
                with self._cond:
                    self.payloads.append(msg)
                    self.fds.extend(fds)
                    self._cond.notify_all()

    def master(self, timeout=10.0, index=0):
        """The received pty master fd (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.fds) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no fd received on console socket {self.path}")
                self._cond.wait(left)
            return self.fds[index]

    def close(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        self._thread.join(1)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def pty_read_until(fd, needle, timeout=10.0):
    """Read from a pty master until `needle` (str) appears; return all text read."""
    buf = b""
    deadline = time.monotonic() + timeout
    nb = needle.encode()
    while nb not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r} on the pty; got {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: slave side closed
            break
        if not chunk:
            break
        buf += chunk
    if nb not in buf:
        raise AssertionError(f"pty closed before {needle!r} appeared; got {buf!r}")
    return buf.decode(errors="replace")


def pty_write(fd, text):
    os.write(fd, text.encode())
