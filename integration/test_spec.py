"""`spec` and `features`."""
import json
import os
import re

from lib.bundle import SPEC_TEMPLATE, rootless_template
from lib.checks import assert_error

SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def _without_version(cfg):
    """Drops what legitimately differs between runtimes: the spec version, the hostname, and
    deltabox's snapshot annotation (its `spec` enables snapshots by default)."""
    c = json.loads(json.dumps(cfg))
    c.pop("ociVersion", None)
    c.pop("hostname", None)
    ann = c.get("annotations", {})
    ann.pop("io.deltabox.snapshots", None)
    if not ann:
        c.pop("annotations", None)
    return c


def test_spec_writes_default_config(t):
    d = t.path("spec")
    os.mkdir(d)
    r = t.rt("spec", cwd=d)
    assert r.out == "", r
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert SEMVER.match(cfg["ociVersion"]), cfg["ociVersion"]
    assert _without_version(cfg) == _without_version(SPEC_TEMPLATE), \
        json.dumps(cfg, indent=1)
    assert os.listdir(d) == ["config.json"], os.listdir(d)


def test_spec_bundle_flag(t):
    d = t.path("elsewhere")
    os.mkdir(d)
    for flag in ("--bundle", "-b"):
        t.rt("spec", flag, d, cwd=t.tmp)
        assert os.path.exists(os.path.join(d, "config.json"))
        assert not os.path.exists(t.path("config.json"))
        os.unlink(os.path.join(d, "config.json"))


def test_spec_rootless(t):
    d = t.path("rl")
    os.mkdir(d)
    t.rt("spec", "--rootless", cwd=d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert _without_version(cfg) == _without_version(rootless_template()), \
        json.dumps(cfg, indent=1)
    ns = [n["type"] for n in cfg["linux"]["namespaces"]]
    assert "user" in ns and "network" not in ns, ns


def test_spec_refuses_to_overwrite(t):
    d = t.path("exists")
    os.mkdir(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write("keep me")
    r = t.rt("spec", cwd=d, check=False)
    assert_error(r, 1, "File config.json exists. Remove it first")
    r = t.rt("spec", "--bundle", d, cwd=t.tmp, check=False)
    assert_error(r, 1, "File config.json exists. Remove it first")
    with open(os.path.join(d, "config.json")) as f:
        assert f.read() == "keep me"


def test_spec_output_is_usable(t):
    """The generated config runs as is (after turning off the terminal)."""
    b = t.bundle()
    os.unlink(b.config_path) if os.path.exists(b.config_path) else None
    t.rt("spec", "--bundle", b.path)
    with open(b.config_path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "echo spec-ok"]
    b.config = cfg
    b.write()
    r = t.rt.run(t.id(), b)
    assert r.rc == 0 and r.out == "spec-ok\n", r


# ------------------------------------------------------------------ features

def _features(t):
    r = t.rt("features")
    try:
        return json.loads(r.out)
    except ValueError as e:
        raise AssertionError(f"features output is not JSON ({e}): {r.out[:500]!r}")


def test_features_json(t):
    f = _features(t)
    assert SEMVER.match(f["ociVersionMin"]), f["ociVersionMin"]
    assert SEMVER.match(f["ociVersionMax"]), f["ociVersionMax"]
    assert f["ociVersionMin"] == "1.0.0", f["ociVersionMin"]
    vmax = tuple(int(x) for x in f["ociVersionMax"].split("-")[0].split("."))
    assert vmax >= (1, 0, 2), vmax
    for h in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop"):
        assert h in f.get("hooks", []), (h, f.get("hooks"))
    lx = f["linux"]
    for ns in ("cgroup", "ipc", "mount", "network", "pid", "user", "uts"):
        assert ns in lx["namespaces"], (ns, lx["namespaces"])
    assert "CAP_SYS_ADMIN" in lx["capabilities"] and "CAP_CHOWN" in lx["capabilities"]
    assert lx["seccomp"]["enabled"] is True
    for a in ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"):
        assert a in lx["seccomp"]["actions"], a
    assert "SCMP_ARCH_X86_64" in lx["seccomp"]["archs"]
    assert lx["cgroup"]["v1"] is True
    for o in ("bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "rprivate", "tmpcopyup"):
        assert o in f["mountOptions"], o


def test_features_pretty_printed(t):
    """runc prints features with 4-space indentation."""
    r = t.rt("features")
    assert r.out.startswith('{\n    "ociVersionMin": '), r.out[:80]
    assert json.dumps(json.loads(r.out), indent=4) == r.out.rstrip("\n")


def test_features_namespaces_accepted(t):
    """Every namespace that `features` lists can actually be used in a container."""
    f = _features(t)
    for ns in f["linux"]["namespaces"]:
        b = t.bundle(f"ns-{ns}")
        b.add_namespace(ns)
        if ns == "user":
            b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        if ns == "time":
            b.linux["timeOffsets"] = {"monotonic": {"secs": 3600, "nanosecs": 0}}
        b.set_args("true").write()
        r = t.rt.run(t.id(ns), b)
        assert r.rc == 0, f"namespace {ns} listed in features but not usable: {r!r}"


# Options that only make sense on particular mounts, or need a real device:
_OPTION_SKIP = {"remount", "bind", "rbind", "tmpcopyup", "idmap", "ridmap"}


def test_features_mount_options_accepted(t):
    """Every mount option listed by `features` is accepted on a tmpfs mount (bind/rbind on a
    bind mount). runc 1.1 gap: it lists `defaults` but passes it to tmpfs as data (EINVAL)."""
    f = _features(t)
    known_gaps = {"defaults"} if t.is_runc else set()
    bad = []
    for opt in f["mountOptions"]:
        if opt in _OPTION_SKIP or opt in known_gaps:
            continue
        b = t.bundle(f"opt-{opt}")
        b.add_mount("/mnt", "tmpfs", "tmpfs", [opt])
        b.set_args("true").write()
        r = t.rt.run(t.id(opt), b)
        if r.rc != 0:
            bad.append((opt, r.err.strip()[-200:]))
    for opt in ("bind", "rbind"):
        b = t.bundle(f"opt-{opt}")
        os.mkdir(t.path(f"src-{opt}"))
        b.add_mount("/mnt", "bind", t.path(f"src-{opt}"), [opt])
        b.set_args("true").write()
        r = t.rt.run(t.id(opt), b)
        if r.rc != 0:
            bad.append((opt, r.err.strip()[-200:]))
    assert not bad, f"options listed in features but refused: {bad}"
