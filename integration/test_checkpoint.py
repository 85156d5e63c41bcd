"""checkpoint and restore, driven exactly as runc is (runc 1.1 flags, files and errors)."""
import json
import os
import subprocess
import time

from lib import util
from lib.checks import assert_error

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"


def need_criu():
    if not any(os.access(os.path.join(d, "criu"), os.X_OK)
               for d in os.environ.get("PATH", "/usr/local/sbin:/usr/sbin").split(":")):
        raise util.Skip("criu is not installed")


def counter_bundle(t, name=None, script=COUNTER):
    b = t.bundle(name)
    b.sh(script).writable()
    return b.write()


def run_counter(t, name="c", script=COUNTER, rt=None):
    """A detached counter container with /dev/null for stdio: runc's CRIU cannot dump a regular
    file opened outside the container's mount namespace."""
    need_criu()
    rt = rt or t.rt
    b = counter_bundle(t, name, script)
    cid = t.id(name)
    t.defer(rt.cleanup, cid)
    rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
    util.wait_for(lambda: count(b) >= 3, what="the counter to start")
    return cid, b


def count(b):
    try:
        return int(util.read_file(os.path.join(b.rootfs, "tmp/count"), "0").strip() or 0)
    except ValueError:  # caught mid-write
        return 0


def ckpt_dirs(t, name="ckpt"):
    return t.path(name, "images"), t.path(name, "work")


def checkpoint(t, cid, *flags, rt=None, check=True, name="ckpt"):
    rt = rt or t.rt
    images, work = ckpt_dirs(t, name)
    os.makedirs(os.path.dirname(images), exist_ok=True)
    return rt("checkpoint", "--image-path", images, "--work-path", work, *flags, cid, check=check)


def restore_detached(t, cid, b, *flags, rt=None, check=True, name="ckpt", **kw):
    rt = rt or t.rt
    images, work = ckpt_dirs(t, name)
    return rt("restore", "--detach", "--image-path", images, "--work-path", work,
              "--bundle", b.path, *flags, cid, check=check, stdin=subprocess.DEVNULL, **kw)


# ---------------------------------------------------------------- probes and refusals

def test_checkpoint_help(t):
    r = t.rt("checkpoint", "--help")
    assert r.rc == 0 and "--image-path" in r.out and "--pre-dump" in r.out, r
    r = t.rt("restore", "--help")
    assert r.rc == 0 and "--lsm-mount-context" in r.out and "--detach" in r.out, r


def test_restore_flag_needs_argument(t):
    r = t.rt("restore", "--lsm-mount-context", check=False)
    assert_error(r, 1, "flag needs an argument")


def test_checkpoint_unknown_container(t):
    r = t.rt("checkpoint", "--image-path", t.path("img"), "nosuch", check=False)
    assert_error(r, 1, "container does not exist")


def test_checkpoint_created_refused(t):
    b = t.bundle(args=["sleep", "100"]).write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.create(cid, b)
    r = t.rt("checkpoint", "--image-path", t.path("img"), cid, check=False)
    assert_error(r, 1, "Container cannot be checkpointed in created state")
    assert t.rt.status(cid) == "created"


def test_checkpoint_stopped_refused(t):
    b = t.bundle(args=["true"]).write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.create(cid, b)
    t.rt.start(cid)
    util.wait_for(lambda: t.rt.status(cid) == "stopped", what="container to stop")
    r = t.rt("checkpoint", "--image-path", t.path("img"), cid, check=False)
    assert_error(r, 1, "Container cannot be checkpointed in stopped state")


def test_checkpoint_option_errors(t):
    cid, b = run_counter(t)
    img = t.path("img")
    r = t.rt("checkpoint", "--image-path", img, "--parent-path", "/abs", cid, check=False)
    assert_error(r, 1, "--parent-path must be relative")
    r = t.rt("checkpoint", "--image-path", img, "--manage-cgroups-mode", "bogus", cid,
             check=False)
    assert_error(r, 1, "Invalid manage cgroups mode")
    r = t.rt("checkpoint", "--image-path", img, "--empty-ns", "pid", cid, check=False)
    assert_error(r, 1, 'namespace "pid" is not supported')
    r = t.rt("checkpoint", "--image-path", img, "--page-server", "nonsense", cid, check=False)
    assert_error(r, 1, "Use --page-server ADDRESS:PORT to specify page server")
    assert t.rt.status(cid) == "running"


def test_pre_dump_without_memory_tracking(t):
    cid, b = run_counter(t)
    r = t.rt("checkpoint", "--pre-dump", "--image-path", t.path("img"), cid, check=False)
    assert_error(r, 1, "CRIU is missing features")
    assert t.rt.status(cid) == "running"


def test_image_path_defaults_to_cwd(t):
    cid, b = run_counter(t)
    cwd = t.path("cwd")
    os.makedirs(cwd)
    t.rt("checkpoint", "--leave-running", cid, cwd=cwd)
    images = os.path.join(cwd, "checkpoint")
    assert os.path.isfile(os.path.join(images, "descriptors.json")), os.listdir(images)
    assert os.path.isfile(os.path.join(images, "dump.log"))  # no --work-path: logs go there
    assert t.rt.status(cid) == "running"


# ---------------------------------------------------------------- checkpoint and restore

def test_restore_of_gzipped_tmpfs_archives(t):
    """Our CRIU archives tmpfs contents without gzip (patch 0004), other CRIUs with it: a
    checkpoint whose archives are gzipped (one made elsewhere) restores its tmpfs files too."""
    cid, b = run_counter(t)
    t.rt.exec(cid, "sh", "-c", "echo kept > /dev/shm/f")
    checkpoint(t, cid)
    images, _ = ckpt_dirs(t)
    archives = [f for f in os.listdir(images) if f.startswith("tmpfs-dev-")]
    assert archives, os.listdir(images)
    for name in archives:
        path = os.path.join(images, name)
        with open(path, "rb") as f:
            assert f.read(2) != b"\x1f\x8b", f"{name} is gzipped"
        subprocess.run(["gzip", "-n", path], check=True)
        os.rename(path + ".gz", path)
    restore_detached(t, cid, b)
    r = t.rt.exec(cid, "cat", "/dev/shm/f")
    assert r.rc == 0 and r.out == "kept\n", r
    t.rt.delete(cid, force=True)


def test_checkpoint_restore_continues(t):
    cid, b = run_counter(t)
    checkpoint(t, cid)
    # Without --leave-running the container is gone, its state with it (runc destroys it).
    assert t.rt.status(cid) is None
    images, work = ckpt_dirs(t)
    dumped = count(b)
    descriptors = json.loads(util.read_file(os.path.join(images, "descriptors.json")))
    assert descriptors == ["/dev/null"] * 3, descriptors
    for f in ("dump.log", "stats-dump"):
        assert os.path.isfile(os.path.join(work, f)), (f, os.listdir(work))
    time.sleep(0.3)
    assert count(b) == dumped, "the container kept running after its checkpoint"

    restore_detached(t, cid, b)
    st = t.rt.state(cid)
    assert st["status"] == "running" and st["pid"] > 0, st
    for f in ("restore.log", "stats-restore"):
        assert os.path.isfile(os.path.join(work, f)), (f, os.listdir(work))
    # It goes on from where it was dumped, not from 1.
    util.wait_for(lambda: count(b) > dumped + 2, what="the restored counter to advance")
    r = t.rt.exec(cid, "cat", "/tmp/count")
    assert r.rc == 0 and int(r.out) > dumped, r
    t.rt("kill", cid, "KILL")
    util.wait_for(lambda: t.rt.status(cid) == "stopped", what="restored container to stop")
    t.rt.delete(cid)


def test_restored_processes_in_container_cgroup(t):
    script = "sleep 1000 & sleep 1000 & " + COUNTER
    cid, b = run_counter(t, script=script)
    before = json.loads(t.rt("ps", "--format", "json", cid).out)
    assert len(before) == 4, before
    checkpoint(t, cid)
    restore_detached(t, cid, b)
    after = json.loads(t.rt("ps", "--format", "json", cid).out)
    init = t.rt.state(cid)["pid"]
    assert init in after and len(after) >= 4, (after, init)
    t.rt.delete(cid, force=True)


def test_leave_running(t):
    cid, b = run_counter(t)
    checkpoint(t, cid, "--leave-running")
    assert t.rt.status(cid) == "running"
    n = count(b)
    util.wait_for(lambda: count(b) > n + 2, what="the counter to keep going")
    # The images restore once the original is gone.
    t.rt.delete(cid, force=True)
    restore_detached(t, cid, b)
    assert t.rt.status(cid) == "running"
    t.rt.delete(cid, force=True)


def test_restore_existing_id_refused(t):
    cid, b = run_counter(t)
    checkpoint(t, cid, "--leave-running")
    r = restore_detached(t, cid, b, check=False)
    assert r.rc == 1, r
    assert "already exists" in r.err, r
    assert t.rt.status(cid) == "running"


def test_checkpoint_paused_stays_paused(t):
    cid, b = run_counter(t)
    t.rt("pause", cid)
    checkpoint(t, cid, "--leave-running")
    assert t.rt.status(cid) == "paused"
    n = count(b)
    time.sleep(0.3)
    assert count(b) == n
    t.rt("resume", cid)
    util.wait_for(lambda: count(b) > n, what="the counter to resume")


def test_checkpoint_twice_same_dir(t):
    cid, b = run_counter(t)
    checkpoint(t, cid, "--leave-running")
    checkpoint(t, cid)
    restore_detached(t, cid, b)
    assert t.rt.status(cid) == "running"


def test_restore_pid_file(t):
    cid, b = run_counter(t)
    checkpoint(t, cid)
    pid_file = t.path("restored.pid")
    restore_detached(t, cid, b, "--pid-file", pid_file)
    pid = util.read_file(pid_file)
    assert pid == str(t.rt.state(cid)["pid"]), pid


def test_restore_stdio_pipes(t):
    """Pipes from the caller come back as the restorer's stdio (descriptors.json)."""
    need_criu()
    b = counter_bundle(t, script="while read line; do echo got:$line; done")
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    t.rt.run_detached(cid, b, stdin=r_in, stdout=w_out, stderr=w_out)
    os.close(r_in)
    os.close(w_out)
    os.write(w_in, b"one\n")
    assert os.read(r_out, 100) == b"got:one\n"
    images, work = ckpt_dirs(t)
    checkpoint(t, cid)
    descriptors = json.loads(util.read_file(os.path.join(images, "descriptors.json")))
    assert all(d.startswith("pipe:[") for d in descriptors), descriptors
    os.close(w_in)
    os.close(r_out)

    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    t.rt("restore", "--detach", "--image-path", images, "--work-path", work, "--bundle", b.path,
         cid, stdin=r_in, stdout=w_out, stderr=w_out)
    os.close(r_in)
    os.close(w_out)
    os.write(w_in, b"two\n")
    assert os.read(r_out, 100) == b"got:two\n"
    os.close(w_in)
    os.close(r_out)
    t.rt.delete(cid, force=True)


def test_restore_foreground_exit_status(t):
    cid, b = run_counter(t, script="i=0; while [ ! -f /tmp/stop ]; do i=$((i+1)); "
                                   "echo $i > /tmp/count; sleep 0.05; done; exit 3")
    checkpoint(t, cid)
    images, work = ckpt_dirs(t)
    out = open(t.path("fg.out"), "w")
    p = subprocess.Popen([t.rt.path, "--root", t.rt.root, "restore", "--image-path", images,
                          "--work-path", work, "--bundle", b.path, cid],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        util.wait_for(lambda: t.rt.status(cid) == "running", what="restored container")
        t.rt.exec(cid, "touch", "/tmp/stop", check=True)
        assert p.wait(timeout=20) == 3, util.read_file(t.path("fg.out"))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.close()
    # Like run: the foreground restore deletes the container when it exits.
    assert t.rt.status(cid) is None


def test_checkpoint_lazy_pages_refused(t):
    t.only_deltabox("runc waits for a lazy-pages client that never comes")
    cid, b = run_counter(t)
    r = t.rt("checkpoint", "--lazy-pages", "--image-path", t.path("img"), cid, check=False)
    assert r.rc == 1, r
    assert t.rt.status(cid) == "running"


def test_image_dir_created_like_runc(t):
    cid, b = run_counter(t)
    images = t.path("new", "images")
    t.rt("checkpoint", "--leave-running", "--image-path", images, cid)
    # runc's MkdirAll(imagePath, 0600): every new level is 0600 (root still traverses it).
    assert os.stat(images).st_mode & 0o777 == 0o600, oct(os.stat(images).st_mode)
    assert os.stat(t.path("new")).st_mode & 0o777 == 0o600


def test_restore_terminal_console_socket(t):
    """A terminal container: the restored pty master goes to the restore's console socket."""
    need_criu()
    from lib.console import ConsoleSocket, pty_read_until, pty_write
    b = t.bundle()
    b.sh("while read line; do echo got:$line; done").writable().terminal().write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    with ConsoleSocket(t.path("cs1.sock")) as cs:
        t.rt.create(cid, b, console_socket=cs.path)
        t.rt.start(cid)
        m = cs.master()
        pty_write(m, "one\n")
        pty_read_until(m, "got:one")
        checkpoint(t, cid)
    with ConsoleSocket(t.path("cs2.sock")) as cs:
        images, work = ckpt_dirs(t)
        t.rt("restore", "--detach", "--console-socket", cs.path, "--image-path", images,
             "--work-path", work, "--bundle", b.path, cid)
        m = cs.master()
        pty_write(m, "two\n")
        pty_read_until(m, "got:two")
    t.rt.delete(cid, force=True)


def test_restore_terminal_needs_console_socket(t):
    need_criu()
    b = t.bundle().terminal().write()
    cid = t.id()
    r = t.rt("restore", "--detach", "--image-path", t.path("img"), "--bundle", b.path, cid,
             check=False)
    assert_error(r, 1, "cannot allocate tty if runc will detach without setting console socket")


def test_checkpoint_bind_mounts(t):
    """Bind mounts from the host (a directory and a file) are external: the restore binds them
    again from the config's sources."""
    need_criu()
    vol = t.path("vol")
    os.makedirs(vol)
    with open(t.path("greeting"), "w") as f:
        f.write("hello\n")
    b = counter_bundle(t, script="i=0; while true; do i=$((i+1)); echo $i > /tmp/count; "
                                 "cat /greeting > /vol/seen; echo $i > /vol/count; sleep 0.05; done")
    b.add_mount("/vol", "bind", vol, ["rbind", "rw"])
    b.add_mount("/greeting", "bind", t.path("greeting"), ["bind", "ro"])
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    util.wait_for(lambda: count(b) >= 3, what="the counter")
    checkpoint(t, cid)

    def vol_count():  # "" when caught between the shell's O_TRUNC and its write
        return int(util.read_file(os.path.join(vol, "count"), "").strip() or 0)
    # The checkpoint killed the container, so only the restored one can advance the host's count.
    # (Not unlinked: the dump may catch the shell with /vol/count open, and CRIU reopens it.)
    dumped = vol_count()
    with open(t.path("greeting"), "w") as f:  # same size: cat may hold it open in the images
        f.write("again\n")
    restore_detached(t, cid, b)
    util.wait_for(lambda: util.read_file(os.path.join(vol, "seen"), "") == "again\n",
                  what="the restored container to see the host's file and dir")
    # Polled: the workload writes /vol/count after /vol/seen, and may first finish the iteration
    # the dump interrupted.
    util.wait_for(lambda: vol_count() > dumped,
                  what=f"the restored container to write to the host's dir (count was {dumped})")


def test_restore_under_new_id(t):
    """Restored under another id (podman restore --name): its own cgroup, not the original's."""
    cid, b = run_counter(t, script="sleep 1000 & " + COUNTER)
    checkpoint(t, cid)
    new = t.id("copy")
    t.defer(t.rt.cleanup, new)
    restore_detached(t, new, b)
    pids = json.loads(t.rt("ps", "--format", "json", new).out)
    # sh and `sleep 1000`; the loop's `sleep 0.05` only when the dump caught one running
    assert len(pids) >= 2, pids
    init = t.rt.state(new)["pid"]
    cg = util.read_file(f"/proc/{init}/cgroup")
    assert f"/{new}\n" in cg and f"/{cid}\n" not in cg, cg


def test_restore_runs_prestart_hooks(t):
    """runc runs prestart and createRuntime hooks when CRIU has set up the namespaces."""
    need_criu()
    b = counter_bundle(t)
    log = t.path("hooks.log")
    hook = t.path("hook.sh")
    with open(hook, "w") as f:
        f.write(f"#!/bin/sh\necho \"$1 $(cat | tr -d ' ' | grep -o '\"status\":\"[a-z]*\"')\" >> {log}\n")
    os.chmod(hook, 0o755)
    b.config["hooks"] = {"createRuntime": [{"path": hook, "args": [hook, "createRuntime"]}]}
    b.write()
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    util.wait_for(lambda: count(b) >= 3, what="the counter")
    checkpoint(t, cid)
    restore_detached(t, cid, b)
    lines = util.read_file(log).splitlines()
    assert len(lines) == 2 and all(ln.startswith("createRuntime") for ln in lines), lines
    if not t.is_runc:  # runc 1.1 reports "stopped" there; the spec's state is "creating"
        assert lines[1] == 'createRuntime "status":"creating"', lines


def test_restore_stdio_files(t):
    """deltabox also restores a container whose stdio is a regular file of the caller's (runc's
    CRIU cannot dump those): the restored process writes to the restorer's stdout. The files are
    O_APPEND: for others CRIU insists the new file has the dumped one's size."""
    t.runc_gap("runc cannot checkpoint a container with a regular file as stdio")
    need_criu()
    b = counter_bundle(t, script="i=0; while true; do i=$((i+1)); echo $i > /tmp/count; "
                                 "echo line $i; sleep 0.05; done")
    cid = t.id()
    t.defer(t.rt.cleanup, cid)
    with open(t.path("first.out"), "a") as out:
        t.rt.run_detached(cid, b, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    util.wait_for(lambda: count(b) >= 3, what="the counter")
    checkpoint(t, cid)
    images, work = ckpt_dirs(t)
    with open(t.path("second.out"), "a") as out:
        t.rt("restore", "--detach", "--image-path", images, "--work-path", work, "--bundle",
             b.path, cid, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    util.wait_for(lambda: "line" in util.read_file(t.path("second.out"), ""),
                  what="output in the restorer's file")
    n = len(util.read_file(t.path("first.out")).splitlines())
    time.sleep(0.2)
    assert len(util.read_file(t.path("first.out")).splitlines()) == n


def test_images_from_runc_restore(t):
    """Images runc made restore with deltabox. (Not the other way round on a hybrid host: a
    deltabox container also sees the cgroup2 hierarchy at /sys/fs/cgroup/unified, an external
    mount runc's restore has no mapping for.)"""
    t.only_deltabox("compares with runc")
    peer = t.peer()
    for dumper, restorer, name in ((peer, t.rt, "r2d"),):
        cid, b = run_counter(t, name=name, rt=dumper)
        checkpoint(t, cid, rt=dumper, name=name)
        t.defer(restorer.cleanup, cid)
        restore_detached(t, cid, b, rt=restorer, name=name)
        n = count(b)
        util.wait_for(lambda: count(b) > n, what=f"{name}: the restored counter")
        restorer.delete(cid, force=True)


def test_restore_loopback_up(t):
    """The restored network namespace (empty_ns, as runc) gets lo up again, with 127.0.0.1
    (runc 1.1 leaves it down). Not tested: a restored TCP socket; CRIU 4.1.1 cannot dump inet
    sockets on this kernel (getsockopt SO_PASSCRED on them fails with EOPNOTSUPP)."""
    t.runc_gap("runc restores the container's netns with lo down")
    cid, b = run_counter(t)
    checkpoint(t, cid)
    restore_detached(t, cid, b)
    assert t.rt.exec(cid, "cat", "/sys/class/net/lo/operstate").out == "unknown\n"
    r = t.rt.exec(cid, "sh", "-c", "mkdir /www && echo pong > /www/ping && "
                                   "httpd -p 127.0.0.1:8080 -h /www && sleep 0.2 && "
                                   "wget -q -O- http://127.0.0.1:8080/ping")
    assert r.out == "pong\n", r


def test_restore_missing_images(t):
    need_criu()
    b = counter_bundle(t)
    cid = t.id()
    r = t.rt("restore", "--detach", "--image-path", t.path("nothing"), "--bundle", b.path, cid,
             check=False)
    assert_error(r, 1, "descriptors.json: no such file or directory")
    assert t.rt.status(cid) is None
