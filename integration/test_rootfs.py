"""root, mounts, masked/readonly paths, devices, propagation, --no-pivot."""
import os
import subprocess

from lib import util
from lib.checks import assert_error, assert_nothing_left


def _run(t, b, cid=None, **kw):
    r = t.rt.run(cid or t.id(), b, **kw)
    assert r.rc == 0, r
    return r.out


def test_readonly_root(t):
    b = t.bundle(args=["sh", "-c", "touch /newfile; echo rc=$?"]).write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0, r
    assert r.out == "rc=1\n" and "Read-only file system" in r.err, r
    assert not os.path.exists(b.file("newfile"))


def test_writable_root(t):
    b = t.bundle(args=["sh", "-c", "echo data > /newfile && echo ok"]).writable().write()
    assert _run(t, b) == "ok\n"
    assert util.read_file(b.file("newfile")) == "data\n"


def test_root_path_absolute(t):
    b = t.bundle(args=["cat", "/etc/hostname"])
    b.config["root"]["path"] = b.rootfs
    b.write()
    assert _run(t, b) == "rootfs\n"


def test_root_path_symlink_refused(t):
    """runc 1.1 refuses a root.path that is a symlink."""
    b = t.bundle(args=["cat", "/etc/hostname"])
    os.symlink("rootfs", os.path.join(b.path, "link"))
    b.config["root"]["path"] = "link"
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "invalid rootfs: not an absolute path, or a symlink")
    assert_nothing_left(t, cid, b)


def test_proc_sys_dev_mounted(t):
    b = t.bundle(args=["sh", "-c", "cat /proc/self/mountinfo"]).write()
    mi = _run(t, b)
    by_mp = {}
    for line in mi.splitlines():
        left, _, right = line.partition(" - ")
        by_mp[left.split()[4]] = (right.split()[0], left.split()[5])
    for mp, fs in (("/", None), ("/proc", "proc"), ("/dev", "tmpfs"), ("/dev/pts", "devpts"),
                   ("/dev/shm", "tmpfs"), ("/dev/mqueue", "mqueue"), ("/sys", "sysfs")):
        assert mp in by_mp, f"{mp} not mounted: {mi}"
        if fs:
            assert by_mp[mp][0] == fs, (mp, by_mp[mp])
    assert by_mp["/"][1].split(",")[0] == "ro", by_mp["/"]
    assert "ro" in by_mp["/sys"][1].split(","), by_mp["/sys"]


def test_bind_mount_rw(t):
    src = t.path("hostdir")
    os.mkdir(src)
    with open(os.path.join(src, "in"), "w") as f:
        f.write("from-host\n")
    b = t.bundle(args=["sh", "-c", "cat /data/in; echo from-ctr > /data/out"])
    b.add_mount("/data", "bind", src, ["rbind", "rw"])
    b.write()
    assert _run(t, b) == "from-host\n"
    assert util.read_file(os.path.join(src, "out")) == "from-ctr\n"


def test_bind_mount_ro(t):
    src = t.path("hostdir")
    os.mkdir(src)
    b = t.bundle(args=["sh", "-c", "ls /data && touch /data/x; echo rc=$?"])
    b.add_mount("/data", "bind", src, ["bind", "ro"])
    b.write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "rc=1\n" and "Read-only file system" in r.err, r
    assert os.listdir(src) == []


def test_bind_mount_file(t):
    src = t.path("hostfile")
    with open(src, "w") as f:
        f.write("single file\n")
    b = t.bundle(args=["cat", "/etc/motd"])
    b.add_mount("/etc/motd", "bind", src, ["bind", "ro"])  # destination does not exist yet
    b.write()
    assert _run(t, b) == "single file\n"


def test_bind_mount_creates_missing_destination(t):
    src = t.path("hostdir")
    os.mkdir(src)
    b = t.bundle(args=["sh", "-c", "test -d /deep/new/dir && echo yes"])
    b.add_mount("/deep/new/dir", "bind", src, ["rbind"])
    b.writable().write()
    assert _run(t, b) == "yes\n"


def test_bind_mount_missing_source(t):
    b = t.bundle(args=["true"])
    b.add_mount("/data", "bind", t.path("does-not-exist"), ["rbind"])
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1 and "no such file or directory" in r.err, r
    assert_nothing_left(t, cid, b)


def test_tmpfs_size_and_mode(t):
    b = t.bundle(args=["sh", "-c",
                       "stat -c %a /scratch; df -k /scratch | tail -n 1; "
                       "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null; "
                       "echo dd=$?"])
    b.add_mount("/scratch", "tmpfs", "tmpfs", ["size=1m", "mode=1770", "nosuid"])
    b.write()
    out = _run(t, b).split("\n")
    assert out[0] == "1770", out
    assert out[1].split()[1] == "1024", out
    assert out[2] == "dd=1", out


def test_mount_options_applied(t):
    b = t.bundle(args=["sh", "-c", "grep ' /scratch ' /proc/self/mountinfo"])
    b.add_mount("/scratch", "tmpfs", "tmpfs", ["nosuid", "nodev", "noexec", "ro"])
    b.write()
    line = _run(t, b)
    opts = line.split()[5].split(",")
    for o in ("ro", "nosuid", "nodev", "noexec"):
        assert o in opts, (o, line)


def test_masked_paths(t):
    b = t.bundle(args=["sh", "-c",
                       "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; "
                       "cat /etc/secret | wc -c; ls /secretdir | wc -l"])
    b.file("etc/secret", "top secret\n")
    os.makedirs(b.file("secretdir"))
    b.file("secretdir/a", "x")
    b.linux["maskedPaths"] = b.linux["maskedPaths"] + ["/etc/secret", "/secretdir"]
    b.write()
    out = _run(t, b).split()
    assert out == ["0", "0", "0", "0"], out


def test_masked_path_missing_is_ignored(t):
    b = t.bundle(args=["true"])
    b.linux["maskedPaths"] = ["/does/not/exist"]
    b.write()
    _run(t, b)


def test_readonly_paths(t):
    b = t.bundle(args=["sh", "-c",
                       "echo 1 > /proc/sys/kernel/ns_last_pid; echo proc=$?; "
                       "touch /rodir/x; echo rodir=$?; touch /rwdir/x; echo rwdir=$?"])
    os.makedirs(b.file("rodir"))
    os.makedirs(b.file("rwdir"))
    b.linux["readonlyPaths"] = b.linux["readonlyPaths"] + ["/rodir"]
    b.set_caps(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0, r
    assert r.out.split() == ["proc=1", "rodir=1", "rwdir=0"], r
    assert "Read-only file system" in r.err, r


def test_default_devices(t):
    b = t.bundle(args=["sh", "-c",
                       "for d in null zero full random urandom tty; do "
                       "stat -c '%n %F %t:%T %a' /dev/$d; done; "
                       "for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; "
                       "echo hi > /dev/null && head -c 4 /dev/zero | wc -c"]).write()
    out = _run(t, b).split("\n")
    want = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9",
            "tty": "5:0"}
    for line in out[:6]:
        parts = line.split()
        dev, majmin, mode = parts[0].split("/")[-1], parts[-2], parts[-1]
        assert "character special file" in line, line
        maj, mi = (int(x, 16) for x in majmin.split(":"))
        assert f"{maj}:{mi}" == want[dev], line
        assert mode == "666", line
    assert out[6:11] == ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
                         "/proc/self/fd/2"], out
    assert out[11] == "4", out


def test_custom_device(t):
    b = t.bundle(args=["sh", "-c", "stat -c '%F %t:%T %a %u:%g' /dev/fuse /dev/mything"])
    b.linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
         "uid": 0, "gid": 0},
        {"path": "/dev/mything", "type": "c", "major": 240, "minor": 7, "fileMode": 0o640,
         "uid": 1000, "gid": 1000},
    ]
    b.write()
    out = _run(t, b).split("\n")
    assert out[0] == "character special file a:e5 666 0:0", out
    assert out[1] == "character special file f0:7 640 1000:1000", out


def test_device_cgroup_denies_unlisted(t):
    """The default device rules deny a node that is not allowed (EPERM at open); once allowed,
    open reaches the (absent) driver and fails with ENXIO instead."""
    b = t.bundle(args=["sh", "-c", "cat /dev/mything; echo rc=$?"])
    b.linux["devices"] = [{"path": "/dev/mything", "type": "c", "major": 240, "minor": 7,
                           "fileMode": 0o666}]
    b.write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "rc=1\n", r
    assert "Operation not permitted" in r.err, r
    b.linux["resources"]["devices"].append({"allow": True, "type": "c", "major": 240,
                                            "minor": 7, "access": "rwm"})
    b.write()
    r = t.rt.run(t.id("allowed"), b)
    assert r.rc == 0 and r.out == "rc=1\n", r
    assert "No such device or address" in r.err, r


def test_devpts_and_shm_usable(t):
    b = t.bundle(args=["sh", "-c", "echo x > /dev/shm/f && cat /dev/shm/f; "
                       "stat -c %a /dev/shm"]).write()
    assert _run(t, b).split() == ["x", "1777"]


def _root_mount_tags(t, prop, cid):
    b = t.bundle(f"p-{prop}", args=["awk", "$5 == \"/\"", "/proc/self/mountinfo"])
    if prop:
        b.linux["rootfsPropagation"] = prop
    b.write()
    line = _run(t, b, cid)
    assert line.count("\n") == 1, line
    return line.split(" - ")[0].split()[6:]


def test_rootfs_propagation_accepted(t):
    """Every propagation value is accepted; the default root mount is not shared."""
    for prop in (None, "shared", "slave", "private", "unbindable", "rshared", "rslave",
                 "rprivate"):
        tags = _root_mount_tags(t, prop, t.id(str(prop)))
        if prop is None:
            assert not any(f.startswith("shared:") for f in tags), tags


def test_rootfs_propagation_applied(t):
    """The container's / carries the requested propagation. runc 1.1 applies
    rootfsPropagation to the mount namespace before pivot_root only, so nothing shows."""
    t.runc_gap("rootfsPropagation is not visible on the container's / in runc 1.1")
    assert any(f.startswith("shared:") for f in _root_mount_tags(t, "shared", t.id("s")))
    assert "unbindable" in _root_mount_tags(t, "unbindable", t.id("u"))
    tags = _root_mount_tags(t, "private", t.id("p"))
    assert not any(f.startswith(("shared:", "master:")) for f in tags), tags


def test_bind_mount_propagation_slave(t):
    """A bind mount with rslave sees mounts the host makes below its source afterwards."""
    src = t.path("shared-src")
    os.mkdir(src)
    os.mkdir(os.path.join(src, "sub"))
    subprocess.run(["mount", "--bind", src, src], check=True)
    t.defer(lambda: subprocess.run(["umount", "-R", src], check=True))
    subprocess.run(["mount", "--make-shared", src], check=True)
    b = t.bundle(args=["sleep", "1000"])
    b.add_mount("/vol", "bind", src, ["rbind", "rslave"])
    b.write()
    cid = t.id()
    try:
        t.rt.run_detached(cid, b)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "late", os.path.join(src, "sub")],
                       check=True)
        with open(os.path.join(src, "sub", "hello"), "w") as f:
            f.write("propagated\n")
        r = t.rt.exec(cid, "cat", "/vol/sub/hello")
        assert r.rc == 0 and r.out == "propagated\n", r
    finally:
        t.rt.cleanup(cid)


def test_rootfs_propagation_invalid(t):
    b = t.bundle(args=["true"])
    b.linux["rootfsPropagation"] = "sideways"
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert r.rc == 1, r
    assert_nothing_left(t, cid, b)


def test_no_pivot(t):
    b = t.bundle(args=["sh", "-c", "cat /etc/hostname; ls /bin/busybox"]).write()
    cid = t.id()
    r = t.rt.run(cid, b, no_pivot=True)
    assert r.rc == 0 and r.out == "rootfs\n/bin/busybox\n", r
    assert_nothing_left(t, cid, b)


def test_no_pivot_detached_lifecycle(t):
    b = t.bundle(args=["sleep", "1000"]).write()
    cid = t.id()
    try:
        t.rt.create(cid, b, no_pivot=True)
        t.rt.start(cid)
        r = t.rt.exec(cid, "cat", "/etc/hostname")
        assert r.rc == 0 and r.out == "rootfs\n", r
    finally:
        t.rt.cleanup(cid)
    assert_nothing_left(t, cid, b)


def test_missing_rootfs(t):
    b = t.bundle(args=["true"])
    b.config["root"]["path"] = "no-such-rootfs"
    b.write()
    cid = t.id()
    r = t.rt.run(cid, b)
    assert_error(r, 1, "no such file or directory")
    assert_nothing_left(t, cid, b)


def test_mount_destination_must_be_absolute_or_is_joined(t):
    """runc 1.1 accepts a relative destination (joined to /) with a warning."""
    src = t.path("hostdir")
    os.mkdir(src)
    b = t.bundle(args=["sh", "-c", "test -d /reldata && echo ok"])
    b.add_mount("reldata", "bind", src, ["rbind"])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "ok\n", r


def test_symlink_escape_contained(t):
    """A mount destination that is a symlink pointing outside the rootfs stays inside it."""
    b = t.bundle(args=["sh", "-c", "test -d /escape-target/mnt && echo inside"])
    os.symlink("/../../../../escape-target", b.file("escape"))
    os.makedirs(b.file("escape-target"))
    b.add_mount("/escape/mnt", "tmpfs", "tmpfs", [])
    b.writable().write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "inside\n", r
    assert not os.path.exists("/escape-target"), "mount escaped the rootfs"
