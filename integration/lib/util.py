"""Small helpers shared by the harness and the tests: skips, waiting, /proc and cgroup readers."""
import errno
import os
import signal
import time

CGROUP_ROOT = "/sys/fs/cgroup"


class Skip(Exception):
    """Raise from a test to report SKIP with a reason."""


def skip(why):
    raise Skip(why)


def wait_for(pred, timeout=10.0, interval=0.02, what=None):
    """Poll pred() until it returns a truthy value; return that value or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except (OSError, ValueError) as e:  # e.g. the file we poll does not exist yet
            last = None
            err = e
        else:
            err = None
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}"
                                 + (f" (last error: {err})" if err else ""))
        time.sleep(interval)


def read_counter(read, attempts=20, pause=0.01):
    """A workload's counter file, which the workload rewrites with `echo $i > f`: a read that
    falls between the shell's O_TRUNC and its write sees it empty, and so may the first read
    after a rollback to a snapshot taken in that instant. read() -> (rc, text); retried while
    it succeeds with no number. -> the number, or -1."""
    for _ in range(attempts):
        rc, text = read()
        if rc != 0:
            return -1
        if text.strip().isdigit():
            return int(text)
        time.sleep(pause)
    return -1


def read_file(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        if default is not None:
            return default
        raise


def proc_status(pid):
    """/proc/<pid>/status as a dict of str -> str (values stripped)."""
    out = {}
    for line in read_file(f"/proc/{pid}/status").splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        st = proc_status(pid)
    except OSError:
        return False
    return not st.get("State", "").startswith(("Z", "X"))


def wait_pid_gone(pid, timeout=10.0):
    wait_for(lambda: not pid_alive(pid), timeout, what=f"pid {pid} to exit")


# ---------------------------------------------------------------- mounts

def mountinfo(pid="self"):
    """Parsed /proc/<pid>/mountinfo: list of dicts (id, parent, root, mountpoint, opts, fstype,
    source, superopts)."""
    res = []
    for line in read_file(f"/proc/{pid}/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        res.append({
            "id": int(f[0]), "parent": int(f[1]), "root": _unescape(f[3]),
            "mountpoint": _unescape(f[4]), "opts": f[5],
            "fstype": r[0], "source": _unescape(r[1]) if len(r) > 1 else "",
            "superopts": r[2] if len(r) > 2 else "",
        })
    return res


def _unescape(s):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mounts_under(prefix, pid="self"):
    """Mount points at or below prefix (a path), or whose source mentions it."""
    prefix = prefix.rstrip("/")
    res = []
    for m in mountinfo(pid):
        for p in (m["mountpoint"], m["source"]):
            if p == prefix or p.startswith(prefix + "/"):
                res.append(m["mountpoint"])
                break
    return res


# ---------------------------------------------------------------- cgroups

def cgroup_hierarchies(root=CGROUP_ROOT):
    """{name: mountpoint} for every cgroup mount directly below root (symlinks skipped)."""
    res = {}
    for m in mountinfo():
        if m["fstype"] in ("cgroup", "cgroup2") and os.path.dirname(m["mountpoint"]) == root:
            res[os.path.basename(m["mountpoint"])] = m["mountpoint"]
    return res


def cgroup_subdirs(path):
    """Every cgroup directory strictly below path, deepest first."""
    res = []
    for dirpath, dirnames, _ in os.walk(path, topdown=False, followlinks=False):
        if dirpath != path:
            res.append(dirpath)
    return res


def cgroup_pids(path):
    """All pids in the cgroup at path and below (v1 or v2)."""
    pids = set()
    for dirpath, _, _ in os.walk(path, followlinks=False):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return pids


def cgroup_enter(path, pid=0):
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(pid))


def cgroup_mkdir(path, parent_for_cpuset=None):
    """mkdir a cgroup; for a v1 cpuset hierarchy copy cpus/mems from the parent."""
    os.mkdir(path)
    parent = os.path.dirname(path)
    for k in ("cpuset.cpus", "cpuset.mems"):
        pf = os.path.join(parent, k)
        if os.path.exists(pf) and os.path.exists(os.path.join(path, k)):
            cur = read_file(os.path.join(path, k)).strip()
            if not cur:
                with open(os.path.join(path, k), "w") as f:
                    f.write(read_file(pf).strip())


def cgroup_thaw(path):
    """Thaw every frozen cgroup at or below path (v1 freezer.state, v2 cgroup.freeze)."""
    for dirpath, _, files in os.walk(path, followlinks=False):
        for name, val in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            if name in files:
                try:
                    with open(os.path.join(dirpath, name), "w") as f:
                        f.write(val)
                except OSError:
                    pass


def cgroup_kill_all(paths, exclude=(), timeout=10.0):
    """SIGKILL every process in the given cgroup trees (after thawing), until they are empty.
    Only pass cgroups this process created. Returns the set of pids that were signalled."""
    killed = set()
    deadline = time.monotonic() + timeout
    while True:
        pids = set()
        for p in paths:
            if os.path.isdir(p):
                pids |= cgroup_pids(p)
        pids -= set(exclude)
        if not pids:
            return killed
        for p in paths:
            if os.path.isdir(p):
                cgroup_thaw(p)
                kf = os.path.join(p, "cgroup.kill")
                if os.path.exists(kf):
                    try:
                        with open(kf, "w") as f:
                            f.write("1")
                    except OSError:
                        pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        if time.monotonic() > deadline:
            return killed
        time.sleep(0.02)


def cgroup_rmtree(path, timeout=10.0):
    """rmdir path and every cgroup below it (deepest first), retrying while busy."""
    deadline = time.monotonic() + timeout
    while os.path.isdir(path):
        busy = None
        for d in cgroup_subdirs(path) + [path]:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                busy = e
        if not os.path.isdir(path):
            return True
        if time.monotonic() > deadline:
            raise OSError(busy.errno if busy else errno.EBUSY, f"cannot remove cgroup {path}: {busy}")
        time.sleep(0.05)
    return True


# ---------------------------------------------------------------- misc

def cap_mask(names):
    """Capability names (CAP_X) -> integer mask as shown in /proc/<pid>/status."""
    m = 0
    for n in names:
        m |= 1 << CAPS[n]
    return m


CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}


def cgroup_pids_outside(path, prefix):
    """pids in the cgroup at path and its subtrees, except subtrees whose top-level name
    starts with prefix."""
    pids = set()
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids.update(int(x) for x in f.read().split())
    except OSError:
        pass
    for e in os.listdir(path):
        d = os.path.join(path, e)
        if os.path.isdir(d) and not os.path.islink(d) and not e.startswith(prefix):
            pids |= cgroup_pids(d)
    return pids


def timeout(seconds):
    """Decorator: a per-test timeout other than the runner's default."""
    def deco(fn):
        fn.timeout = seconds
        return fn
    return deco
