"""OCI bundles for tests: a busybox rootfs plus config.json built from runc's `spec` template."""
import copy
import json
import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Exactly what `runc spec` (1.1.5) writes, as a Python dict.
SPEC_TEMPLATE = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [PATH_ENV, "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                       {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}


def rootless_template():
    """What `runc spec --rootless` (1.1.5) writes."""
    t = copy.deepcopy(SPEC_TEMPLATE)
    for m in t["mounts"]:
        if m["destination"] == "/dev/pts":
            m["options"].remove("gid=5")
        if m["destination"] == "/sys":
            m["type"] = "none"
            m["source"] = "/sys"
            m["options"] = ["rbind", "nosuid", "noexec", "nodev", "ro"]
    lx = t["linux"]
    del lx["resources"]
    lx["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    lx["namespaces"] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                        {"type": "user"}]
    # key order as runc writes it: uidMappings, gidMappings before namespaces
    t["linux"] = {k: lx[k] for k in ("uidMappings", "gidMappings", "namespaces",
                                     "maskedPaths", "readonlyPaths")}
    return t


PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = ("root:x:0:\n"
         "app:x:1000:\n"
         "nogroup:x:65534:\n")


def make_template_rootfs(path):
    """Build the shared busybox rootfs once per run: bin/busybox + one symlink per applet."""
    os.makedirs(path)
    bindir = os.path.join(path, "bin")
    os.makedirs(bindir)
    shutil.copy2(BUSYBOX, os.path.join(bindir, "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(bindir, a))
    for d in ("proc", "sys", "dev", "tmp", "etc", "root", "home/app", "var", "run", "mnt",
              "usr"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    os.symlink("../bin", os.path.join(path, "usr", "bin"))
    os.symlink("bin", os.path.join(path, "sbin"))
    os.chown(os.path.join(path, "home/app"), 1000, 1000)
    with open(os.path.join(path, "etc/passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(path, "etc/group"), "w") as f:
        f.write(GROUP)
    with open(os.path.join(path, "etc/hostname"), "w") as f:
        f.write("rootfs\n")


def clone_tree(src, dst):
    """Copy a rootfs cheaply: directories are recreated, regular files hard-linked,
    symlinks recreated."""
    os.makedirs(dst)
    shutil.copystat(src, dst)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        tdir = dst if rel == "." else os.path.join(dst, rel)
        for d in dirnames:
            s = os.path.join(dirpath, d)
            t = os.path.join(tdir, d)
            if os.path.islink(s):
                os.symlink(os.readlink(s), t)
            else:
                os.mkdir(t)
                st = os.lstat(s)
                os.chmod(t, st.st_mode & 0o7777)
                os.chown(t, st.st_uid, st.st_gid)
        for fn in filenames:
            s = os.path.join(dirpath, fn)
            t = os.path.join(tdir, fn)
            if os.path.islink(s):
                os.symlink(os.readlink(s), t)
            elif fn in ("passwd", "group", "hostname"):
                shutil.copy2(s, t)  # tests may edit these
            else:
                os.link(s, t)
    # os.walk does not descend into symlinked dirs, and lists them in dirnames: handled above.


class Bundle:
    """b = Bundle(dir, template_rootfs); b.set_args('sh', '-c', 'echo hi'); b.write()."""

    def __init__(self, path, template_rootfs):
        self.path = path
        self.rootfs = os.path.join(path, "rootfs")
        clone_tree(template_rootfs, self.rootfs)
        self.config = copy.deepcopy(SPEC_TEMPLATE)
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = ["true"]

    @property
    def config_path(self):
        return os.path.join(self.path, "config.json")

    # -- process
    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config.setdefault("linux", {})

    def set_args(self, *args):
        self.process["args"] = list(args)
        return self

    def sh(self, script):
        return self.set_args("sh", "-c", script)

    def no_terminal(self):
        self.process["terminal"] = False
        return self

    def terminal(self, on=True):
        self.process["terminal"] = on
        return self

    def writable(self):
        self.config["root"]["readonly"] = False
        return self

    def add_env(self, *kv):
        self.process.setdefault("env", []).extend(kv)
        return self

    # -- mounts
    def add_mount(self, destination, type="bind", source=None, options=None):
        m = {"destination": destination, "type": type, "source": source or type}
        if options is not None:
            m["options"] = list(options)
        self.config.setdefault("mounts", []).append(m)
        return m

    def mount(self, destination):
        for m in self.config.get("mounts", []):
            if m["destination"] == destination:
                return m
        return None

    def remove_mount(self, destination):
        self.config["mounts"] = [m for m in self.config.get("mounts", [])
                                 if m["destination"] != destination]
        return self

    # -- namespaces
    def namespaces(self):
        return [n["type"] for n in self.linux.get("namespaces", [])]

    def add_namespace(self, type, path=None):
        self.remove_namespace(type)
        n = {"type": type}
        if path:
            n["path"] = path
        self.linux.setdefault("namespaces", []).append(n)
        return self

    def remove_namespace(self, type):
        self.linux["namespaces"] = [n for n in self.linux.get("namespaces", [])
                                    if n["type"] != type]
        return self

    def set_caps(self, caps, sets=("bounding", "effective", "permitted", "ambient")):
        c = self.process.setdefault("capabilities", {})
        for s in sets:
            c[s] = list(caps)
        return self

    # -- files
    def write(self, raw=None):
        """Write config.json (or raw text/bytes instead of the dict)."""
        with open(self.config_path, "w" if not isinstance(raw, bytes) else "wb") as f:
            if raw is not None:
                f.write(raw)
            else:
                json.dump(self.config, f, indent="\t")
        return self

    def file(self, rel, content=None, mode=None):
        """Path of a file inside the rootfs; write content to it if given."""
        p = os.path.join(self.rootfs, rel.lstrip("/"))
        if content is not None:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if os.path.exists(p):
                os.unlink(p)  # may be a hard link shared with the template
            with open(p, "w") as f:
                f.write(content)
            if mode is not None:
                os.chmod(p, mode)
        return p
