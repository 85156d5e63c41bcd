"""Pieces of bench/snapshot: the workload, the drivers (deltabox with snapshots, runc +
CRIU, raw CRIU), btrfs/cgroup probes and the hand-written SVG plot.

The workload, the same for every driver: a shell (pid 1 of its pid namespace) with four
children -- a pipe pair (`sleep | cat`), a counter loop, a sleeper -- and `memhog`, a static C
program that holds N MiB of touched memory (every 4 KiB page has unique content, so content
dedup cannot shrink a dump) and, on SIGUSR1, dirties the next D MiB (rotating) and bumps a
generation counter in <statedir>/memhog.gen ("<gen> <pid>").
"""
import json
import math
import os
import select
import signal
import subprocess
import time

from timing import median, percentile  # noqa: F401  (bench/lib, re-exported)

PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MiB = 1 << 20

MEMHOG_C = r"""
/* memhog MIB STATEDIR DIRTY_MIB: hold MIB MiB of touched memory, every page unique; on SIGUSR1
   dirty the next DIRTY_MIB MiB (rotating) and publish "<gen> <pid>" in STATEDIR/memhog.gen. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t pending;
static void on_usr1(int s) { (void)s; pending = 1; }

static void publish(const char *dir, unsigned long gen) {
  char path[4096], tmp[4096], buf[64];
  snprintf(path, sizeof path, "%s/memhog.gen", dir);
  snprintf(tmp, sizeof tmp, "%s/memhog.gen.tmp", dir);
  int n = snprintf(buf, sizeof buf, "%lu %d\n", gen, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  if (write(fd, buf, n) < 0) {}
  close(fd);
  rename(tmp, path);
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 16;
  const char *dir = argc > 2 ? argv[2] : "/tmp";
  size_t dirty = argc > 3 ? strtoul(argv[3], 0, 10) : 4;
  const size_t page = 4096, len = mib << 20;
  uint64_t *m = malloc(len);
  if (!m) return 1;
  uint64_t seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ 0xD1B54A32D192ED03ULL;
  for (size_t p = 0; p < len / page; p++) {          /* touch every page, unique content */
    uint64_t *w = m + p * (page / 8);
    w[0] = seed ^ p;
    w[1] = p * 0xBF58476D1CE4E5B9ULL;
    w[511] = ~(uint64_t)p;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, 0);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, &old);
  unsigned long gen = 0;
  size_t next = 0; /* page index of the next page to dirty */
  for (;;) {
    publish(dir, gen);
    while (!pending) sigsuspend(&old);
    pending = 0;
    gen++;
    for (size_t d = 0; d < (dirty << 20) / page; d++) {
      uint64_t *w = m + next * (page / 8);
      w[2] = gen;
      w[3] ^= (uint64_t)gen * 0x94D049BB133111EBULL + next;
      if (++next >= len / page) next = 0;
    }
  }
}
"""


def build_memhog(dst, workdir):
    """Compile memhog with `gcc -static` into dst (once per run)."""
    src = os.path.join(workdir, "memhog.c")
    with open(src, "w") as f:
        f.write(MEMHOG_C)
    subprocess.run(["gcc", "-O2", "-static", "-o", dst, src], check=True)


def workload_script(memhog, statedir, mib, dirty_mib, counter_period=0.2):
    """The tree: sh + (sleep | cat) + counter loop + sleeper + memhog."""
    return (f"{memhog} {mib} {statedir} {dirty_mib} & "
            "sleep 1000000 | cat & "
            f"( i=0; while true; do i=$((i+1)); echo $i > {statedir}/counter; "
            f"sleep {counter_period}; done ) & "
            "sleep 1000000 & "
            "wait")


def modify_script(statedir, files, file_kib, phase):
    """Write `files` files of file_kib KiB (fresh random data) and a phase marker under /data,
    dirty memhog's next window and wait for its ack. Prints '<phase before> <gen before>
    <gen after>' so the caller can check that the last rollback took files and memory back."""
    return (f"mkdir -p /data; p=$(cat /data/phase 2>/dev/null || echo none); "
            f"for j in $(seq 1 {files}); do head -c {file_kib * 1024} /dev/urandom > /data/f$j; done; "
            f"echo {phase} > /data/phase; "
            f"set -- $(cat {statedir}/memhog.gen); g=$1; kill -USR1 $2; "
            f"n=0; while [ \"$(cut -d' ' -f1 {statedir}/memhog.gen)\" = \"$g\" ]; do "
            f"usleep 500; n=$((n+1)); [ $n -gt 20000 ] && break; done; "
            f"echo $p $g $(cut -d' ' -f1 {statedir}/memhog.gen)")


# =========================================================================== processes

class CommandFailed(Exception):
    def __init__(self, argv, rc, err):
        super().__init__(f"rc={rc}: {' '.join(str(a) for a in argv)[:200]}: {err.strip()[-600:]}")
        self.argv, self.rc, self.err = argv, rc, err


def read(path, default=""):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def spawn(argv, env, stdin=None, stdout=None, stderr=None):
    """posix_spawn argv with the given fds (default /dev/null) as 0/1/2; wait; return
    (seconds, rc). fds, not pipes we read: a detached container inherits them."""
    nul = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    fds = [nul if x is None else x for x in (stdin, stdout, stderr)]
    fa = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(fds)]
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], [str(a) for a in argv], env, file_actions=fa)
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        t1 = time.perf_counter_ns()
    finally:
        os.close(nul)
    return (t1 - t0) / 1e9, os.waitstatus_to_exitcode(st)


class Files:
    """Plain files for a command's stdout/stderr (O_TMPFILE-free: CRIU must be able to reopen
    a restored process's stdio through /proc)."""

    def __init__(self, tmp, key):
        self.out = os.path.join(tmp, f"{key}.stdout")
        self.err = os.path.join(tmp, f"{key}.stderr")

    def open(self):
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        return os.open(self.out, flags, 0o644), os.open(self.err, flags, 0o644)


def timed(argv, env, files, stdin=None, check=True):
    """Run argv with stdout/stderr to files.out/files.err; returns (seconds, stdout)."""
    o, e = files.open()
    try:
        secs, rc = spawn(argv, env, stdin=stdin, stdout=o, stderr=e)
    finally:
        os.close(o)
        os.close(e)
    out = read(files.out)
    if check and rc != 0:
        raise CommandFailed(argv, rc, read(files.err) + out)
    return secs, out


def wait_for(pred, timeout, step=0.0005, what="condition"):
    """Poll pred() every `step` s; returns seconds waited; raises TimeoutError."""
    t0 = time.perf_counter()
    while True:
        if pred():
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def wait_gone(pid, timeout=20.0):
    try:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout, what=f"pid {pid} to exit")
        return True
    except TimeoutError:
        return False


# =========================================================================== cgroups / memory

def cgroup_pids(d):
    try:
        return {int(x) for x in read(os.path.join(d, "cgroup.procs")).split()}
    except ValueError:
        return set()


def smaps_rollup(pid):
    """{'Rss': bytes, 'Pss': bytes, ...} of /proc/<pid>/smaps_rollup (empty if gone)."""
    out = {}
    for ln in read(f"/proc/{pid}/smaps_rollup").splitlines()[1:]:
        parts = ln.split()
        if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
            out[parts[0][:-1]] = int(parts[1]) * 1024
    return out


def cgroup_memory(d):
    """(pss, rss, nprocs) summed over the processes in cgroup dir d."""
    pss = rss = 0
    pids = cgroup_pids(d)
    for p in pids:
        r = smaps_rollup(p)
        pss += r.get("Pss", 0)
        rss += r.get("Rss", 0)
    return pss, rss, len(pids)


def wait_cgroup_empty(unified_dir, fallback_dir, timeout=20.0):
    """Seconds until the cgroup has no process: poll(POLLPRI) on cgroup.events
    ("populated 0") of the unified hierarchy when there is one, else cgroup.procs polling.
    A directory that is gone counts as empty."""
    t0 = time.perf_counter()
    ev = os.path.join(unified_dir, "cgroup.events") if unified_dir else None
    if ev and os.path.exists(ev):
        try:
            fd = os.open(ev, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # ENOENT/ENODEV: the cgroup is (being) removed
            return time.perf_counter() - t0
        try:
            p = select.poll()
            p.register(fd, select.POLLPRI | select.POLLERR)
            while True:
                try:
                    os.lseek(fd, 0, 0)
                    data = os.read(fd, 4096).decode()
                except OSError:  # ENODEV: removed while we watched
                    return time.perf_counter() - t0
                if "populated 0" in data:
                    return time.perf_counter() - t0
                left = timeout - (time.perf_counter() - t0)
                if left <= 0:
                    raise TimeoutError("cgroup did not empty")
                try:
                    p.poll(min(left, 0.05) * 1000)
                except OSError:
                    return time.perf_counter() - t0
        finally:
            os.close(fd)
    wait_for(lambda: not cgroup_pids(fallback_dir), timeout, step=0.0002, what="cgroup empty")
    return time.perf_counter() - t0


# =========================================================================== btrfs

_BTRFS_IOC_SNAP_CREATE_V2 = 0x50009417  # _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
_BTRFS_SUBVOL_RDONLY = 1 << 1


def btrfs_snapshot_ioctl(src, dst_parent, name, readonly=True):
    """btrfs snapshot by ioctl (no process spawned); returns seconds."""
    import fcntl
    buf = bytearray(4096)
    sfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dfd = os.open(dst_parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        buf[0:8] = sfd.to_bytes(8, "little", signed=True)
        buf[16:24] = (_BTRFS_SUBVOL_RDONLY if readonly else 0).to_bytes(8, "little")
        nb = name.encode()
        buf[56:56 + len(nb)] = nb
        t0 = time.perf_counter()
        fcntl.ioctl(dfd, _BTRFS_IOC_SNAP_CREATE_V2, buf)
        return time.perf_counter() - t0
    finally:
        os.close(sfd)
        os.close(dfd)


def btrfs_used(mnt):
    """{'Data': bytes, 'Metadata': bytes, 'System': bytes, 'total': bytes} used on a btrfs
    mount, after a filesystem sync and after deleted subvolumes are cleaned; None if
    unavailable."""
    subprocess.run(["btrfs", "filesystem", "sync", mnt], capture_output=True)
    subprocess.run(["btrfs", "subvolume", "sync", mnt], capture_output=True, timeout=120)
    r = subprocess.run(["btrfs", "filesystem", "df", "--raw", mnt], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return None
    out = {"total": 0}
    for ln in r.stdout.splitlines():
        if "used=" in ln and not ln.startswith("GlobalReserve"):
            kind = ln.split(",")[0].strip()
            n = int(ln.split("used=")[1].split()[0].rstrip(","))
            out[kind] = out.get(kind, 0) + n
            out["total"] += n
    return out


class BtrfsProbe:
    """The filesystem half of a snapshot done by hand: a subvolume on the store written like
    the modify step (files x KiB of fresh random data), then a read-only snapshot by ioctl."""

    def __init__(self, store_mnt, files, file_kib):
        self.base = os.path.join(store_mnt, "bench-probe")
        self.files, self.file_kib = files, file_kib
        self.n = 0
        os.makedirs(self.base, exist_ok=True)
        self.vol = os.path.join(self.base, "vol")
        subprocess.run(["btrfs", "subvolume", "create", self.vol], check=True,
                       capture_output=True)

    def once(self):
        for j in range(self.files):
            with open(os.path.join(self.vol, f"f{j}"), "wb") as f:
                f.write(os.urandom(self.file_kib * 1024))
        self.n += 1
        name = f"s{self.n}"
        secs = btrfs_snapshot_ioctl(self.vol, self.base, name)
        subprocess.run(["btrfs", "subvolume", "delete", os.path.join(self.base, name)],
                       capture_output=True)
        return secs

    def close(self):
        subprocess.run(["btrfs", "subvolume", "delete", self.vol], capture_output=True)
        try:
            os.rmdir(self.base)
        except OSError:
            pass


# =========================================================================== stats

def summary(xs):
    """(median, p99, n) in seconds."""
    if not xs:
        return float("nan"), float("nan"), 0
    return median(xs), percentile(xs, 99), len(xs)


def fmt_ms(x):
    if x is None or x != x:
        return "—"
    ms = x * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_mib(b):
    if b is None or b != b:
        return "—"
    return f"{b / MiB:.2f}"


# =========================================================================== SVG

_PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948"]


def svg_grouped_bars(groups, series, values, title, unit="ms", width=None, height=440,
                     sections=()):
    """groups: operation labels (x); series: e.g. ['16 MiB', '256 MiB', '1024 MiB'];
    values[g][s]: a positive number or None (missing). Log-scale y. sections: [(first group
    index, label)] drawn as a dashed separator + caption. Returns SVG text."""
    vals = [v for row in values for v in row if v and v > 0]
    if not vals:
        vals = [1.0]
    lo = 10 ** math.floor(math.log10(min(vals) * 0.9))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo * 10
    ns = max(1, len(series))
    bar_w = 14
    group_w = ns * bar_w + 18
    left, right, top, bottom = 64, 20, 62, 150
    width = width or max(760, left + right + group_w * len(groups))
    group_w = max(group_w, (width - left - right) // max(1, len(groups)))
    plot_h = height - top - bottom

    def y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(lo))
                               / (math.log10(hi) - math.log10(lo)))

    esc = (lambda s: str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="14" '
           f'font-weight="bold">{esc(title)}</text>']
    # grid + y labels (decades)
    d = lo
    while d <= hi * 1.0001:
        yy = y(d)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" '
                   f'stroke="#ddd"/>')
        lab = f"{d:g}"
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{lab}</text>')
        d *= 10
    out.append(f'<text x="14" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + plot_h / 2:.0f})">{esc(unit)} (log)</text>')
    for gi, g in enumerate(groups):
        x0 = left + gi * group_w + 9
        for si in range(ns):
            v = values[gi][si] if si < len(values[gi]) else None
            x = x0 + si * bar_w
            if v and v > 0:
                yy = y(max(v, lo))
                out.append(f'<rect x="{x}" y="{yy:.1f}" width="{bar_w - 2}" '
                           f'height="{top + plot_h - yy:.1f}" fill="{_PALETTE[si % 6]}">'
                           f'<title>{esc(g)} {esc(series[si])}: {v:.3g} {esc(unit)}</title></rect>')
        cx = x0 + ns * bar_w / 2
        out.append(f'<text x="{cx:.0f}" y="{top + plot_h + 10}" text-anchor="end" '
                   f'transform="rotate(-50 {cx:.0f} {top + plot_h + 10})">{esc(g)}</text>')
    for gi, label in sections:
        x = left + gi * group_w
        if gi:
            out.append(f'<line x1="{x}" x2="{x}" y1="{top - 6}" y2="{top + plot_h}" '
                       f'stroke="#888" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 6}" y="{top - 8}" font-style="italic" fill="#555">'
                   f'{esc(label)}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#333"/>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
               f'y2="{top + plot_h}" stroke="#333"/>')
    lx = left + 10
    for si, s in enumerate(series):
        out.append(f'<rect x="{lx}" y="{28}" width="10" height="10" fill="{_PALETTE[si % 6]}"/>')
        out.append(f'<text x="{lx + 14}" y="{37}">{esc(s)}</text>')
        lx += 14 + 8 * len(s) + 16
    out.append("</svg>")
    return "\n".join(out) + "\n"


# =========================================================================== drivers

class DeltaboxContainer:
    """A snapshot-enabled deltabox container running the workload (detached, plain-file
    stdio), driven through the CLI."""

    def __init__(self, binary, root, store, criu, cid, bundle, env, tmp):
        self.binary, self.root, self.store, self.criu = binary, root, store, criu
        self.cid, self.bundle, self.env, self.tmp = cid, bundle, env, tmp
        self.files = Files(tmp, f"db-{cid}")
        self.running = False

    def argv(self, *a):
        return [self.binary, "--root", self.root, "--store", self.store, "--criu", self.criu] \
            + [str(x) for x in a]

    def call(self, *a, check=True, stdin=None):
        return timed(self.argv(*a), self.env, self.files, stdin=stdin, check=check)

    # -- paths
    def state(self):
        return json.loads(read(os.path.join(self.root, self.cid, "state.json"), "{}") or "{}")

    def cgroup_dir(self, hierarchy, leaf=""):
        """dir of the container's cgroup (or a leaf below it) in a hierarchy ('memory',
        'unified', ...)."""
        st = self.state()
        for h in st.get("cgroup", {}).get("hierarchies", []):
            name = os.path.basename(h["mount_point"])
            if name == hierarchy:
                return os.path.join(h["dir"], leaf) if leaf else h["dir"]
        return None

    def snap_meta(self, snap):
        return os.path.join(self.store, "containers", self.cid, "snapshots", snap, "meta.json")

    def template_file(self, snap):
        return os.path.join(self.root, self.cid, "templates", f"{snap}.json")

    def jobs_dir(self):
        return os.path.join(self.root, self.cid, "jobs")

    def idle(self):
        try:
            return not os.listdir(self.jobs_dir())
        except FileNotFoundError:
            return True

    def wait_idle(self, timeout=120):
        return wait_for(self.idle, timeout, step=0.001, what=f"helper of {self.cid} to go idle")

    # -- lifecycle
    def run(self):
        """run -d; the container's stdout/stderr are its own plain file (`<cid>.console`),
        opened once with O_APPEND and never truncated: CRIU checks a restored regular file's
        size against the dump's."""
        console = os.path.join(self.tmp, f"db-{self.cid}.console")
        fd = os.open(console, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            secs, rc = spawn(self.argv("run", "--detach", "--bundle", self.bundle, self.cid),
                             self.env, stdout=fd, stderr=fd)
        finally:
            os.close(fd)
        if rc != 0:
            raise CommandFailed(["run", self.cid], rc, read(console))
        self.running = True
        return secs

    def exec(self, script, check=True):
        return self.call("exec", self.cid, "sh", "-c", script, check=check)[1]

    def wait_ready(self, timeout=120):
        wait_for(lambda: self.exec("cat /tmp/memhog.gen 2>/dev/null", check=False).strip()
                 != "", timeout, step=0.1, what=f"workload of {self.cid}")

    def delete(self):
        if self.running:
            self.call("delete", "--force", self.cid, check=False)
            self.running = False


class RuncContainer:
    """The runc baseline: same workload in a runc 1.1 container; stdio are pipes (runc's
    checkpoint handles pipes as external descriptors; regular files it cannot)."""

    def __init__(self, binary, root, criu, cid, bundle, env, tmp):
        self.binary, self.root, self.criu = binary, root, criu
        self.cid, self.bundle, self.env, self.tmp = cid, bundle, env, tmp
        self.files = Files(tmp, f"runc-{cid}")
        self.log = os.path.join(tmp, f"runc-{cid}.log")
        self.pr, self.pw = os.pipe()
        self.live = []

    def argv(self, *a):
        return [self.binary, "--root", self.root, "--criu", self.criu, "--log", self.log] \
            + [str(x) for x in a]

    def _spawn(self, *a):
        # all three stdio are the pipe pair: runc's own messages go to --log
        secs, rc = spawn(self.argv(*a), self.env, stdin=self.pr, stdout=self.pw, stderr=self.pw)
        if rc != 0:
            raise CommandFailed(a, rc, read(self.log)[-600:])
        return secs

    def run(self):
        self.live.append(self.cid)
        return self._spawn("run", "--detach", "--bundle", self.bundle, self.cid)

    def state(self):
        return timed(self.argv("state", self.cid), self.env, self.files)[0]

    def checkpoint_restore(self, images, new_id):
        """(checkpoint --leave-running seconds, restore -d seconds); the restored container
        is deleted afterwards (untimed)."""
        t_ck = self._spawn("checkpoint", "--leave-running", "--image-path", images, self.cid)
        self.live.append(new_id)
        try:
            t_rs = self._spawn("restore", "--detach", "--image-path", images, "--bundle",
                               self.bundle, new_id)
        finally:
            timed(self.argv("delete", "--force", new_id), self.env, self.files, check=False)
            self.live.remove(new_id)
        return t_ck, t_rs

    def cleanup(self):
        for c in list(self.live):
            timed(self.argv("delete", "--force", c), self.env, self.files, check=False)
            self.live.remove(c)
        for fd in (self.pr, self.pw):
            try:
                os.close(fd)
            except OSError:
                pass


class RawTree:
    """The raw CRIU baseline: the workload as `unshare -p -f setsid busybox sh -c ...` (pid 1
    of its own pid namespace and a session leader, so CRIU needs no --shell-job; same mount
    namespace as CRIU, which dumps no mount namespace), dumped with --leave-running and
    restored -d while the original runs on, images on tmpfs."""

    def __init__(self, criu, busybox_bin_dir, script, workdir, env, tmp):
        self.criu, self.workdir, self.tmp = criu, workdir, tmp
        self.env = dict(env, PATH=busybox_bin_dir)
        self.script = script
        self.files = Files(tmp, "raw")
        self.unshare = None
        self.init = None

    def start(self):
        out = open(os.path.join(self.workdir, "out"), "w")
        self.unshare = subprocess.Popen(
            ["unshare", "-p", "-f", "setsid", os.path.join(self.env["PATH"], "sh"), "-c",
             self.script], stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=self.env,
            cwd=self.workdir)
        out.close()
        wait_for(lambda: read(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
                 .split(), 10, what="raw tree init")
        self.init = int(read(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
                        .split()[0])

    def dump_restore(self, images):
        """(dump --leave-running seconds, restore -d seconds); the copy is killed after."""
        os.makedirs(images)
        t_d, _ = timed([self.criu, "dump", "-t", self.init, "--leave-running", "-D", images,
                        "-o", "dump.log"], self.env, self.files)
        pidfile = os.path.join(images, "restored.pid")
        t_r, _ = timed([self.criu, "restore", "-d", "-D", images, "-o", "restore.log",
                        "--pidfile", pidfile], self.env, self.files)
        pid = int(read(pidfile).strip())
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        return t_d, t_r

    def stop(self):
        if self.init:
            try:
                os.kill(self.init, signal.SIGKILL)
            except OSError:
                pass
        if self.unshare:
            self.unshare.wait()


def loadavg():
    return " ".join(read("/proc/loadavg").split()[:3])

