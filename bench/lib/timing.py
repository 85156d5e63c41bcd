"""Timing primitives for the benchmarks: spawn a command with posix_spawn (vfork-like, so the
harness adds as little as possible), wait for it, return wall time; order statistics."""
import math
import os
import time

DEVNULL = "/dev/null"


class CommandFailed(Exception):
    def __init__(self, argv, rc, err):
        super().__init__(f"rc={rc}: {' '.join(argv)}: {err.strip()[-500:]}")
        self.argv, self.rc, self.err = argv, rc, err


def spawn_timed(argv, env, stdout=None, errfile=None):
    """Run argv (argv[0] an absolute path), stdin /dev/null, stdout to the path `stdout` (default
    /dev/null), stderr to errfile (default /dev/null). Returns (seconds, rc). A detached container
    inherits these files, never a pipe, so it can never block us."""
    nul = os.open(DEVNULL, os.O_RDWR | os.O_CLOEXEC)
    out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644) \
        if stdout else nul
    err = os.open(errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644) \
        if errfile else nul
    fa = [(os.POSIX_SPAWN_DUP2, nul, 0), (os.POSIX_SPAWN_DUP2, out, 1),
          (os.POSIX_SPAWN_DUP2, err, 2)]
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        t1 = time.perf_counter_ns()
    finally:
        for fd in {nul, out, err}:
            os.close(fd)
    return (t1 - t0) / 1e9, os.waitstatus_to_exitcode(st)


def median(xs):
    s = sorted(xs)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def wait_gone(pid, timeout=10.0):
    """Poll until /proc/<pid> disappears (the namespace's pid 1 reaps orphans). True if gone."""
    deadline = time.monotonic() + timeout
    path = f"/proc/{pid}"
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0002)
    return True
