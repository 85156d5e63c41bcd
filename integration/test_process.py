"""process.* and the other per-container settings: user, env, cwd, rlimits, capabilities,
noNewPrivileges, seccomp, oomScoreAdj, sysctl, hostname/domainname, terminal, LISTEN_FDS."""
import os

from lib import util
from lib.checks import assert_error, assert_nothing_left, status_field
from lib.console import ConsoleSocket, pty_read_until, pty_write
from lib.util import cap_mask


def _run(t, b, cid=None, **kw):
    r = t.rt.run(cid or t.id(), b, **kw)
    assert r.rc == 0, r
    return r.out


def test_domainname(t):
    t.runc_gap("domainname is ignored by runc 1.1 (reads back '(none)')")
    b = t.bundle(args=["sh", "-c", "cat /proc/sys/kernel/domainname; hostname"])
    b.config["hostname"] = "h1"
    b.config["domainname"] = "example.test"
    b.write()
    assert _run(t, b) == "example.test\nh1\n"


def test_sysctl_network(t):
    b = t.bundle(args=["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward "
                       "/proc/sys/net/ipv4/ip_default_ttl"])
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "net.ipv4.ip_default_ttl": "42"}
    b.write()
    assert _run(t, b).split() == ["1", "42"]
    assert util.read_file("/proc/sys/net/ipv4/ip_default_ttl").strip() != "42"


def test_sysctl_ipc(t):
    b = t.bundle(args=["cat", "/proc/sys/kernel/msgmax"])
    b.linux["sysctl"] = {"kernel.msgmax": "12345"}
    b.write()
    assert _run(t, b) == "12345\n"


def test_sysctl_refused_without_namespace(t):
    """runc refuses a net.* sysctl when the container shares the host's network namespace."""
    b = t.bundle(args=["true"])
    b.remove_namespace("network")
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace")
    assert_nothing_left(t, cid, b)


def test_sysctl_unknown_refused(t):
    b = t.bundle(args=["true"])
    b.linux["sysctl"] = {"kernel.hostname-not-a-thing": "1"}
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_user_uid_gid_additional_gids(t):
    b = t.bundle(args=["sh", "-c", "id; grep -E '^(Uid|Gid|Groups)' /proc/self/status"])
    b.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 100]}
    b.write()
    out = _run(t, b).split("\n")
    assert out[0] == "uid=1000(app) gid=1000(app) groups=5,100", out
    assert out[1].split()[1:] == ["1000"] * 4, out
    assert out[2].split()[1:] == ["1000"] * 4, out
    assert out[3].split()[1:] == ["5", "100"], out


def test_user_without_additional_gids_has_no_groups(t):
    b = t.bundle(args=["grep", "Groups", "/proc/self/status"])
    b.process["user"] = {"uid": 65534, "gid": 65534}
    b.write()
    assert _run(t, b).split() == ["Groups:"]


def test_umask(t):
    b = t.bundle(args=["sh", "-c", "umask; touch /tmp/f; stat -c %a /tmp/f"])
    b.process["user"]["umask"] = 0o027
    b.writable().write()
    assert _run(t, b).split() == ["0027", "640"]


def test_default_umask(t):
    b = t.bundle(args=["sh", "-c", "umask"]).write()
    assert _run(t, b) == "0022\n"


def test_env(t):
    b = t.bundle(args=["env"])
    b.process["env"] = ["PATH=/bin:/sbin", "A=1", "WITH_EQ=x=y", "EMPTY="]
    b.write()
    env = _run(t, b).split("\n")
    for kv in ("PATH=/bin:/sbin", "A=1", "WITH_EQ=x=y", "EMPTY="):
        assert kv in env, (kv, env)
    assert "HOME=/root" in env, env  # runc adds HOME from /etc/passwd when unset


def test_home_from_passwd(t):
    b = t.bundle(args=["sh", "-c", "echo $HOME"])
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.write()
    assert _run(t, b) == "/home/app\n"


def test_args_path_lookup_uses_container_path(t):
    b = t.bundle(args=["myprog"])
    b.file("opt/bin/myprog", "#!/bin/sh\necho found-in-path\n", mode=0o755)
    b.process["env"] = ["PATH=/opt/bin:/bin"]
    b.write()
    assert _run(t, b) == "found-in-path\n"


def test_cwd(t):
    b = t.bundle(args=["pwd"])
    b.process["cwd"] = "/tmp"
    b.write()
    assert _run(t, b) == "/tmp\n"


def test_cwd_created_if_missing(t):
    b = t.bundle(args=["pwd"])
    b.process["cwd"] = "/does/not/exist/yet"
    b.writable().write()
    assert _run(t, b) == "/does/not/exist/yet\n"


def test_cwd_must_be_absolute(t):
    b = t.bundle(args=["pwd"])
    b.process["cwd"] = "relative/dir"
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "Cwd must be an absolute path" if t.is_runc else "process.cwd: must be an absolute path")
    assert_nothing_left(t, cid, b)


def _limits(out):
    """/proc/self/limits text -> {name: (soft, hard)}."""
    res = {}
    for line in out.split("\n")[1:]:
        if not line.strip():
            continue
        name = line[:26].strip()
        f = line[26:].split()
        res[name] = (f[0], f[1])
    return res


def test_rlimits(t):
    b = t.bundle(args=["cat", "/proc/self/limits"])
    b.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    b.write()
    lim = _limits(_run(t, b))
    assert lim["Max open files"] == ("512", "1000"), lim
    assert lim["Max processes"] == ("300", "400"), lim
    assert lim["Max core file size"] == ("0", "0"), lim


def test_rlimit_raise_past_hard_fails_cleanly(t):
    """Without CAP_SYS_RESOURCE the hard RLIMIT_NOFILE cannot go above the runtime's own:
    the container is not created and nothing is left."""
    hard = int(util.read_file("/proc/self/limits").split("Max open files")[1].split()[1])
    b = t.bundle(args=["true"])
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 10000}]
    b.write()
    cid = t.id()
    r = t.rt.create(cid, b, check=False)
    assert_error(r, 1, "error setting rlimit type 7", "operation not permitted")
    assert_nothing_left(t, cid, b)
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_rlimit_unknown_type(t):
    b = t.bundle(args=["true"])
    b.process["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "wrong rlimit value: RLIMIT_BOGUS" if t.is_runc else 'process.rlimits[0].type: unknown rlimit "RLIMIT_BOGUS"')
    assert_nothing_left(t, cid, b)


def _caps(out):
    return {k: int(status_field(out, k), 16) for k in
            ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_capabilities_default_template(t):
    b = t.bundle(args=["cat", "/proc/self/status"]).write()
    c = _caps(_run(t, b))
    want = cap_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    assert c["CapEff"] == want and c["CapPrm"] == want and c["CapBnd"] == want, c
    assert c["CapInh"] == 0, c
    # ambient needs the inheritable set too: runc 1.1 drops it silently
    assert c["CapAmb"] == 0, c


def test_capabilities_each_set_root(t):
    """For uid 0 the kernel fills permitted/effective from the bounding set at exec; the
    bounding, inheritable and ambient sets come from the config."""
    b = t.bundle(args=["cat", "/proc/self/status"])
    b.process["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL"],
    }
    b.process["noNewPrivileges"] = False
    b.write()
    c = _caps(_run(t, b))
    bnd = cap_mask(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"])
    assert c["CapBnd"] == bnd, {k: hex(v) for k, v in c.items()}
    assert c["CapEff"] == bnd and c["CapPrm"] == bnd, {k: hex(v) for k, v in c.items()}
    assert c["CapInh"] == cap_mask(["CAP_KILL", "CAP_NET_RAW"]), c
    assert c["CapAmb"] == cap_mask(["CAP_KILL"]), c


def test_capabilities_each_set_non_root(t):
    """For a non-root user only the ambient set survives exec into permitted/effective."""
    b = t.bundle(args=["cat", "/proc/self/status"])
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.process["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL"],
    }
    b.write()
    c = _caps(_run(t, b))
    assert c["CapBnd"] == cap_mask(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"]), c
    assert c["CapInh"] == cap_mask(["CAP_KILL", "CAP_NET_RAW"]), c
    assert c["CapAmb"] == cap_mask(["CAP_KILL"]), c
    assert c["CapPrm"] == cap_mask(["CAP_KILL"]) and c["CapEff"] == cap_mask(["CAP_KILL"]), \
        {k: hex(v) for k, v in c.items()}


def test_capabilities_non_root_user(t):
    """A non-root process keeps only its ambient capabilities across exec."""
    b = t.bundle(args=["cat", "/proc/self/status"])
    b.process["user"] = {"uid": 1000, "gid": 1000}
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    b.process["capabilities"] = {s: caps for s in ("bounding", "effective", "permitted",
                                                   "inheritable", "ambient")}
    b.write()
    c = _caps(_run(t, b))
    assert c["CapEff"] == cap_mask(caps) and c["CapAmb"] == cap_mask(caps), c


def test_capabilities_empty(t):
    b = t.bundle(args=["cat", "/proc/self/status"])
    b.process["capabilities"] = {}
    b.write()
    c = _caps(_run(t, b))
    assert c == {k: 0 for k in c}, c


def test_capabilities_unknown_name(t):
    b = t.bundle(args=["true"])
    b.process["capabilities"]["bounding"] = ["CAP_NOT_A_CAP"]
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    # runc 1.1 only warns about unknown capabilities and carries on
    assert r.rc == 0, r
    assert "CAP_NOT_A_CAP" in r.err, r


def test_no_new_privileges(t):
    for nnp, want in ((True, "1"), (False, "0")):
        b = t.bundle(f"nnp{int(nnp)}", args=["grep", "NoNewPrivs", "/proc/self/status"])
        b.process["noNewPrivileges"] = nnp
        b.write()
        assert _run(t, b, t.id(f"nnp{int(nnp)}")).split() == ["NoNewPrivs:", want]


def _seccomp(default="SCMP_ACT_ALLOW", syscalls=()):
    return {"defaultAction": default,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": list(syscalls)}


def test_seccomp_errno(t):
    b = t.bundle(args=["sh", "-c", "mkdir /tmp/d1; echo rc=$?; grep ^Seccomp: /proc/self/status"])
    b.linux["seccomp"] = _seccomp(syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0, r
    assert r.out.split("\n")[:2] == ["rc=1", "Seccomp:\t2"], r
    assert "Operation not permitted" in r.err, r
    assert not os.path.exists(b.file("tmp/d1"))


def test_seccomp_enosys(t):
    b = t.bundle(args=["sh", "-c", "mkdir /tmp/d1; echo rc=$?"])
    b.linux["seccomp"] = _seccomp(syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "rc=1\n", r
    assert "Function not implemented" in r.err, r


def test_seccomp_default_errno(t):
    """defaultAction ERRNO with an allow list: a syscall outside the list fails."""
    b = t.bundle(args=["sh", "-c", "mkdir /tmp/d1; echo rc=$?"])
    allowed = ["read", "write", "open", "openat", "close", "fstat", "newfstatat", "stat",
               "lstat", "statx", "mmap", "munmap", "mprotect", "brk", "rt_sigaction",
               "rt_sigprocmask", "rt_sigreturn", "ioctl", "access", "faccessat", "faccessat2",
               "execve", "execveat", "exit", "exit_group", "arch_prctl", "set_tid_address",
               "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "fcntl",
               "dup2", "dup3", "wait4", "fork", "vfork", "clone", "clone3", "getcwd",
               "uname", "prlimit64", "getrlimit", "setpgid", "getpgid", "getpgrp", "setsid",
               "pipe", "pipe2", "readlink", "readlinkat", "lseek", "getdents64", "sigaltstack",
               "futex", "set_robust_list", "rseq", "getrandom", "poll", "ppoll", "pselect6",
               "select", "kill", "tgkill", "gettid", "umask", "chdir", "fchdir",
               "capget", "capset", "prctl", "setgroups", "setuid", "setgid", "setresuid",
               "setresgid", "close_range", "sched_yield", "nanosleep", "clock_nanosleep",
               "epoll_pwait", "epoll_ctl", "epoll_create1", "writev", "readv", "fstatfs",
               "statfs", "openat2", "getdents", "fchown", "fchmod", "pread64", "pwrite64",
               "madvise", "mremap", "sysinfo", "getpriority", "setpriority", "waitid",
               "membarrier", "sched_getaffinity", "restart_syscall", "fsync", "fdatasync"]
    b.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "rc=1\n", r


def test_seccomp_kill(t):
    b = t.bundle(args=["sh", "-c", "mkdir /tmp/d1; echo rc=$?"])
    b.linux["seccomp"] = _seccomp(syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "rc=159\n", r  # 128 + SIGSYS
    assert not os.path.exists(b.file("tmp/d1"))


def test_seccomp_kill_init(t):
    b = t.bundle(args=["mkdir", "/tmp/d1"])
    b.linux["seccomp"] = _seccomp(syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 159, r


def test_seccomp_args_filter(t):
    """A rule with an argument condition: only personality(0xffffffff) is refused."""
    b = t.bundle(args=["sh", "-c", "linux64 true; echo rc=$?"])
    b.linux["seccomp"] = _seccomp(syscalls=[
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}])
    b.write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "rc=1\n", r
    b.linux["seccomp"]["syscalls"][0]["args"][0]["value"] = 8
    b.write()
    r = t.rt.run(t.id("other"), b)
    assert r.rc == 0 and r.out == "rc=0\n", r


def test_seccomp_invalid_action(t):
    b = t.bundle(args=["true"])
    b.linux["seccomp"] = _seccomp(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}])
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_oom_score_adj(t):
    b = t.bundle(args=["cat", "/proc/self/oom_score_adj"])
    b.process["oomScoreAdj"] = 500
    b.write()
    assert _run(t, b) == "500\n"


def test_oom_score_adj_exec_inherits(t):
    b = t.bundle(args=["sleep", "1000"])
    b.process["oomScoreAdj"] = 321
    b.write()
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        pid = t.rt.state(cid)["pid"]
        assert util.read_file(f"/proc/{pid}/oom_score_adj").strip() == "321"
        r = t.rt.exec(cid, "cat", "/proc/self/oom_score_adj")
        assert r.out == "321\n", r
    finally:
        t.rt.cleanup(cid)


def test_terminal_console_socket(t):
    b = t.bundle(args=["sh"])
    b.terminal(True)
    b.process["consoleSize"] = {"height": 40, "width": 123}
    b.write()
    cid = t.id()
    try:
        with ConsoleSocket(t.path("console.sock")) as cs:
            t.rt.create(cid, b, console_socket=cs.path)
            m = cs.master()
            assert cs.payloads and cs.payloads[0], "the message must carry a payload"
            t.rt.start(cid)
            pty_write(m, "tty; stty size; ls -l /dev/console; echo done-$((6*7))\n")
            out = pty_read_until(m, "done-42")
            assert "/dev/pts/0" in out or "/dev/console" in out, out
            assert "40 123" in out, out
            pty_write(m, "exit 5\n")
            util.wait_for(lambda: t.rt.status(cid) == "stopped", what="shell to exit")
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_terminal_run_detached(t):
    b = t.bundle(args=["sh", "-c", "echo on-tty; test -t 0 && test -t 1 && echo isatty; "
                       "sleep 1000"])
    b.terminal(True).write()
    cid = t.id()
    try:
        with ConsoleSocket(t.path("console.sock")) as cs:
            t.rt.run_detached(cid, b, console_socket=cs.path)
            out = pty_read_until(cs.master(), "isatty")
            assert "on-tty" in out
    finally:
        t.rt.cleanup(cid)


def test_terminal_without_console_socket_refused(t):
    b = t.bundle(args=["true"])
    b.terminal(True).write()
    cid = t.id()
    r = t.rt.create(cid, b, check=False)
    assert_error(r, 1, "cannot allocate tty if runc will detach without setting console socket")
    assert_nothing_left(t, cid, b)


def test_console_socket_without_terminal_refused(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    with ConsoleSocket(t.path("cs.sock")) as cs:
        r = t.rt.create(cid, b, check=False, console_socket=cs.path)
    assert_error(r, 1, "cannot use console socket if runc will not detach or allocate tty")
    assert_nothing_left(t, cid, b)


def test_listen_fds_passthrough(t):
    b = t.bundle(args=["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3; "
                       "test -e /proc/self/fd/4 && echo fd4-leaked || echo no-fd4"]).write()
    with open(t.path("fd3"), "w+") as f3, open(t.path("fd4"), "w+") as f4:
        f3.write("socket-activated\n")
        f3.flush()
        f3.seek(0)
        # sd_listen_fds semantics: LISTEN_PID must be the runtime's own pid
        r = t.rt.run(t.id(), b, extra_env={"LISTEN_FDS": "1"},
                     fds={3: f3.fileno(), 4: f4.fileno()},
                     prefix=["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"])
    assert r.rc == 0, r
    assert r.out == "1 1\nsocket-activated\nno-fd4\n", r


def test_preserve_fds_run(t):
    b = t.bundle(args=["sh", "-c", "cat <&3; cat <&4"]).write()
    with open(t.path("a"), "w+") as fa, open(t.path("b"), "w+") as fb:
        fa.write("A\n")
        fb.write("B\n")
        fa.flush()
        fb.flush()
        fa.seek(0)
        fb.seek(0)
        r = t.rt.run(t.id(), b, preserve_fds=2, fds={3: fa.fileno(), 4: fb.fileno()})
    assert r.rc == 0 and r.out == "A\nB\n", r


def test_extra_fds_not_leaked(t):
    b = t.bundle(args=["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"]).write()
    with open(t.path("x"), "w") as fx:
        r = t.rt.run(t.id(), b, fds={3: fx.fileno(), 7: fx.fileno()})
    assert r.rc == 0, r
    fds = r.out.split()
    # 0-2 plus the fd ls used to read the directory
    assert len(fds) <= 4 and fds[:3] == ["0", "1", "2"], r


def test_orphans_reparented_to_container_init(t):
    """process.args is pid 1 of the container: orphans are reparented to it."""
    b = t.bundle(args=["sh", "-c", "p=$(sh -c 'sleep 5 >/dev/null & echo $!'); "
                       "grep PPid /proc/$p/status; kill $p"]).write()
    assert _run(t, b).split() == ["PPid:", "1"]
