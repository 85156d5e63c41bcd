"""Helpers shared by the snapshot end-to-end tests (test_snapshot_*.py).

Containers here are snapshot-enabled busybox containers, run detached with plain-file
stdout/stderr (CRIU must be able to reopen a restored generation's stdio by path; the harness'
O_TMPFILE temporaries cannot be reopened).
"""
import fcntl
import json
import os
import shutil
import subprocess

from . import util
from .checks import assert_nothing_left, cgroup_dirs_named
from .util import Skip


def snap_bundle(t, args, name=None, annotations=None, cwd=None):
    """A writable busybox bundle with io.deltabox.snapshots=true (and extra annotations)."""
    t.only_deltabox("snapshots are a deltabox feature")
    b = t.bundle(name, args=list(args))
    ann = b.config.setdefault("annotations", {})
    ann["io.deltabox.snapshots"] = "true"
    ann.update(annotations or {})
    if cwd:
        b.process["cwd"] = cwd
    b.writable()
    return b


def start(t, b, cid=None, global_args=None):
    """Run bundle b detached (b.write() first) with stdout/stderr in t.path('<cid>.out')."""
    b.write()
    cid = cid or t.id(os.path.basename(b.path))
    t.defer(t.rt.cleanup, cid)
    with open(t.path(f"{cid}.out"), "a") as out:
        t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                          global_args=global_args)
    return cid


def snapshot(t, cid, name=None, async_=False, check=True, **kw):
    """-> (snapshot id, seconds the CLI took)."""
    a = ["snapshot", "--format", "json"]
    if name:
        a += ["--name", name]
    if async_:
        a.append("--async")
    r = t.rt(*a, cid, check=check, **kw)
    if r.rc != 0:
        return None, r
    return json.loads(r.out)["id"], r.elapsed


def rollback(t, cid, snap, **kw):
    """-> seconds the CLI took."""
    return t.rt("rollback", cid, snap, **kw).elapsed


def fork(t, cid, snap, new_ids, check=True):
    """Fork new_ids from snap (each deleted at the end of the test); -> seconds the CLI took."""
    for f in new_ids:
        t.defer(t.rt.cleanup, f)
    with open(t.path("forks.out"), "a") as out:
        r = t.rt("fork", cid, snap, *new_ids, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                 check=False, timeout=120)
    if check:
        assert r.rc == 0, f"fork failed: {r!r}\n{util.read_file(t.path('forks.out'), '')[-2000:]}"
    return r


def listing(t, cid):
    """`snapshots --format json` rows."""
    return json.loads(t.rt("snapshots", "--format", "json", cid).out)


def listed_ids(t, cid):
    return [r["id"] for r in listing(t, cid)]


def state_dir(t, cid):
    return os.path.join(t.rt.root, cid)


def template_file(t, cid, snap):
    return os.path.join(state_dir(t, cid), "templates", f"{snap}.json")


def template_record(t, cid, snap):
    try:
        return json.loads(util.read_file(template_file(t, cid, snap)))
    except (OSError, ValueError):
        return None


def wait_template(t, cid, snap, timeout=30):
    util.wait_for(lambda: template_record(t, cid, snap), timeout=timeout,
                  what=f"template of {cid}/{snap}")
    return template_record(t, cid, snap)


def templates(t, cid):
    d = os.path.join(state_dir(t, cid), "templates")
    return sorted(f[:-5] for f in os.listdir(d) if f.endswith(".json")) if os.path.isdir(d) else []


def anchor_children(t, cid):
    """Host pids of the anchor's children: the live generation, the templates waiting beside
    it, and old generations not yet reaped."""
    anchor = t.rt.state(cid)["pid"]
    return [int(k) for k in util.read_file(f"/proc/{anchor}/task/{anchor}/children").split()]


def generation_pid(t, cid):
    """Host pids of the anchor's live children that are not templates: once a rollback is
    over, exactly one, the live generation."""
    tpls = set()
    for snap in templates(t, cid):
        rec = template_record(t, cid, snap)
        if rec:
            tpls.add(rec["host_pid"])
    return [p for p in anchor_children(t, cid) if p not in tpls and util.pid_alive(p)]


def wait_one_generation(t, cid, what=""):
    """Exactly one live generation (old ones may take a moment to be reaped)."""
    try:
        return util.wait_for(lambda: (lambda g: len(g) == 1 and g)(generation_pid(t, cid)),
                             timeout=10)[0]
    except AssertionError:
        raise AssertionError(f"{what}: {cid} has {len(generation_pid(t, cid))} live "
                             f"generations, not 1: {generation_pid(t, cid)} (templates "
                             f"{templates(t, cid)})") from None


def exec_ok(t, cid, script, *args, timeout=60):
    """Run a sh script (with positional args) inside the container, in /; assert success;
    -> stdout."""
    r = t.rt.exec(cid, "sh", "-c", script, "sh", *args, cwd="/", timeout=timeout)
    assert r.rc == 0, f"exec in {cid} failed: {r!r}"
    return r.out


def tree_md5(t, cid, top):
    """{path: md5} of every regular file below top, from inside the container (one exec)."""
    out = exec_ok(t, cid, f"cd {top} && find . -type f -exec md5sum {{}} +")
    res = {}
    for line in out.splitlines():
        md5, _, path = line.partition("  ")
        res[path[2:] if path.startswith("./") else path] = md5
    return res


def helper_pids(t, cid):
    """Processes of the container's helper (its own cgroup /deltabox-helper-<id>)."""
    pids = set()
    for d in cgroup_dirs_named(f"deltabox-helper-{cid}"):
        pids |= util.cgroup_pids(d)
    return {p for p in pids if util.pid_alive(p)}


def helper_process(t, cid):
    """The helper itself (`deltabox ... helper <id>`), not the CRIU it runs: pids."""
    res = set()
    for p in helper_pids(t, cid):
        argv = util.read_file(f"/proc/{p}/cmdline", "").split("\0")
        if "helper" in argv and cid in argv:
            res.add(p)
    return res


def assert_gone(t, cid):
    """Container cid is deleted: no state, state dir, cgroup, helper cgroup or store entry
    (processes are not looked at: other containers of the test may still run)."""
    r = t.rt("state", cid, check=False)
    assert r.rc != 0 and "does not exist" in r.err, f"container {cid} still exists: {r!r}"
    assert not os.path.exists(state_dir(t, cid)), f"state dir of {cid} left"
    cgs = cgroup_dirs_named(cid) + cgroup_dirs_named(f"deltabox-helper-{cid}")
    assert not cgs, f"cgroups left for {cid}: {cgs}"
    left = store_leftovers(cid)
    assert not left, f"layer store entries left for {cid}: {left}"


def assert_clean(t, cid, bundle=None):
    """assert_nothing_left plus: no helper cgroup (deltabox-helper-<id>) and no helper left."""
    assert_nothing_left(t, cid, bundle)
    cgs = cgroup_dirs_named(f"deltabox-helper-{cid}")
    assert not cgs, f"helper cgroups left for {cid}: {cgs}"
    left = store_leftovers(cid)
    assert not left, f"layer store entries left for {cid}: {left}"


def store_leftovers(cid, store=None):
    """Whatever of container cid is left in a layer store (default $DELTABOX_STORE):
    <store>/containers/<id>."""
    root = store or os.environ.get("DELTABOX_STORE")
    if not root:
        return []
    d = os.path.join(root, "containers", cid)
    return [d] if os.path.lexists(d) else []


class Timer:
    """Collects named durations and prints a summary (shown by `integration/run -v`)."""

    def __init__(self, t=None):
        self.name = t.name if t is not None else ""
        self.samples = {}

    def add(self, what, seconds):
        self.samples.setdefault(what, []).append(seconds)

    def report(self, title=""):
        lines = [f"timings {self.name}{(' ' + title) if title else ''}:"]
        for what, xs in self.samples.items():
            xs = sorted(xs)
            med = xs[len(xs) // 2]
            lines.append(f"  {what:<28} n={len(xs):<3} median={med * 1000:7.1f} ms  "
                         f"min={xs[0] * 1000:7.1f} ms  max={xs[-1] * 1000:7.1f} ms")
        note("\n".join(lines))


def note(text):
    """Print (the harness shows a test's output on failure with -v); with
    DELTABOX_IT_TIMINGS=<file> also append to that file, to collect figures of passing runs."""
    print(text, flush=True)
    path = os.environ.get("DELTABOX_IT_TIMINGS")
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


# ---------------------------------------------------------------- sockserv: a static socket server

SOCKSERV_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n > sizeof a->sun_path - 2) n = sizeof a->sun_path - 2;
    memcpy(a->sun_path + 1, name, n); /* sun_path[0] = 0: abstract */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static void inet_addr_of(struct sockaddr_in *a, int port) {
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((unsigned short)port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static int die(const char *what) {
    fprintf(stderr, "sockserv: %s: %s\n", what, strerror(errno));
    return 2;
}

static int serve(int argc, char **argv) {
    struct pollfd fds[3];
    int kinds[3], n = 0;
    const char *tag = "srv";
    int one = 1;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-g")) { tag = argv[i + 1]; continue; }
        int fd;
        if (!strcmp(argv[i], "-a")) {
            struct sockaddr_un a;
            socklen_t len = abstract_addr(&a, argv[i + 1]);
            fd = socket(AF_UNIX, SOCK_STREAM, 0);
            if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, 16) < 0)
                return die("abstract unix listener");
            kinds[n] = 'a';
        } else {
            struct sockaddr_in a;
            int udp = !strcmp(argv[i], "-u");
            inet_addr_of(&a, atoi(argv[i + 1]));
            a.sin_addr.s_addr = htonl(INADDR_ANY);
            fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || (!udp && listen(fd, 16) < 0))
                return die(udp ? "udp socket" : "tcp listener");
            kinds[n] = udp ? 'u' : 't';
        }
        fds[n].fd = fd;
        fds[n].events = POLLIN;
        n++;
    }
    unsigned long served = 0;
    printf("serving %d sockets\n", n);
    fflush(stdout);
    for (;;) {
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            return die("poll");
        }
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            char reply[128];
            if (kinds[i] == 'u') {
                char buf[64];
                struct sockaddr_storage peer;
                socklen_t plen = sizeof peer;
                if (recvfrom(fds[i].fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen) < 0) continue;
                int len = snprintf(reply, sizeof reply, "%s udp %lu\n", tag, ++served);
                sendto(fds[i].fd, reply, (size_t)len, 0, (struct sockaddr *)&peer, plen);
                continue;
            }
            int c = accept(fds[i].fd, NULL, NULL);
            if (c < 0) continue;
            int len = snprintf(reply, sizeof reply, "%s %s %lu\n", tag, kinds[i] == 'a' ? "unix" : "tcp", ++served);
            if (write(c, reply, (size_t)len) < 0) { /* the client went away */ }
            close(c);
        }
    }
}

static int client(const char *kind, const char *where) {
    int fd;
    char buf[256];
    if (!strcmp(kind, "unix")) {
        struct sockaddr_un a;
        socklen_t len = abstract_addr(&a, where);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, len) < 0) return die("connect unix");
    } else {
        struct sockaddr_in a;
        int udp = !strcmp(kind, "udp");
        inet_addr_of(&a, atoi(where));
        fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return die("connect");
        if (udp) {
            struct timeval tv = {2, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            if (send(fd, "x", 1, 0) < 0) return die("send");
        }
    }
    ssize_t r = read(fd, buf, sizeof buf - 1);
    if (r < 0) return die("read");
    buf[r] = 0;
    fputs(buf, stdout);
    return r > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "serve")) return serve(argc - 2, argv + 2);
    if (argc == 3) return client(argv[1], argv[2]);
    fprintf(stderr, "usage: sockserv serve [-g TAG] [-t PORT] [-u PORT] [-a NAME] | sockserv tcp|udp PORT | sockserv unix NAME\n");
    return 2;
}
"""


def sockserv_binary(t):
    """A static program (gcc -static, built once per run) that binds what busybox cannot:

      sockserv serve [-g TAG] [-t PORT] [-u PORT] [-a NAME]
          listen on TCP PORT (any address), bind UDP PORT, listen on the abstract unix socket
          @NAME; answer every connection / datagram with "TAG tcp|udp|unix N" where N counts
          what it served (in memory), then close.
      sockserv tcp|udp PORT / sockserv unix NAME
          a client: connect to 127.0.0.1:PORT or @NAME and print the answer."""
    out = os.path.join(t.run["tmp"], "snapshot-sockserv")
    if os.path.exists(out):
        return out
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise Skip("no C compiler to build the static socket server")
    with open(out + ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if os.path.exists(out):
            return out
        with open(out + ".c", "w") as f:
            f.write(SOCKSERV_C)
        r = subprocess.run([cc, "-static", "-O2", "-o", out + ".tmp", out + ".c"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot build the static socket server: {r.stderr.strip()[-300:]}")
        os.rename(out + ".tmp", out)
    return out


def install_sockserv(t, bundle, rel="bin/sockserv"):
    dst = bundle.file(rel)
    if os.path.lexists(dst):
        os.unlink(dst)
    shutil.copyfile(sockserv_binary(t), dst)
    os.chmod(dst, 0o755)
    return "/" + rel
