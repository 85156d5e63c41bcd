"""Drive an OCI runtime CLI (runc or deltabox) the same way: always with a private --root."""
import fcntl
import json
import os
import shlex
import subprocess
import tempfile
import time


class Result:
    __slots__ = ("args", "rc", "out", "err", "elapsed")

    def __init__(self, args, rc, out, err, elapsed):
        self.args, self.rc, self.out, self.err, self.elapsed = args, rc, out, err, elapsed

    def __iter__(self):  # rc, out, err = rt(...)
        return iter((self.rc, self.out, self.err))

    def __repr__(self):
        errs = [ln for ln in self.err.strip().split("\n") if ln.strip()]
        last = errs[-1][:240] if errs else ""
        return (f"[rc={self.rc} err: {last}] {shlex.join(self.args)}\n"
                f"  out={_clip(self.out)!r}\n  err={_clip(self.err)!r}")

    def json(self):
        return json.loads(self.out)


def _clip(s, n=2000):
    return s if len(s) <= n else s[:n] + f"...[{len(s) - n} more]"


class RuntimeFailed(AssertionError):
    pass


class Runtime:
    """rt = Runtime(path, root); rt("state", id) -> Result. Every call gets --root <root>.

    Output is captured through temporary files, not pipes, so a detached container that
    inherits the runtime's stdio can never block the caller.
    """

    def __init__(self, path, root, log=None, log_format="json", cwd=None, env=None, tmpdir=None):
        self.path = path
        self.root = root
        self.log = log
        self.log_format = log_format
        self.cwd = cwd
        self.env = env
        self.tmpdir = tmpdir
        self.history = []  # every Result, for debugging failures

    @property
    def name(self):
        return os.path.basename(self.path)

    @property
    def is_runc(self):
        return os.path.basename(os.path.realpath(self.path)).startswith("runc")

    def global_args(self, log=None):
        a = [self.path, "--root", self.root]
        log = self.log if log is None else log
        if log:
            a += ["--log", log, "--log-format", self.log_format]
        return a

    def __call__(self, *args, check=True, input=None, timeout=60, cwd=None, env=None,
                 pass_fds=(), fds=None, stdin=None, stdout=None, stderr=None, log=None,
                 extra_env=None, global_args=None, prefix=None):
        """Run `<runtime> --root R [--log L] args...`.

        stdin/stdout/stderr may be file objects or fds to hand to the runtime (and so to a
        detached container); otherwise stdin is /dev/null (or `input`) and stdout/stderr are
        captured. fds={3: fd} places fd at number 3 in the runtime's process (e.g. for
        --preserve-fds or LISTEN_FDS). prefix=[...] runs the runtime through a wrapper command
        that must exec it. check=True raises RuntimeFailed on a non-zero exit.
        """
        argv = (list(prefix or []) + self.global_args(log) + list(global_args or [])
                + [str(a) for a in args])
        if env is None:
            env = dict(self.env) if self.env is not None else dict(os.environ)
        if extra_env:
            env.update(extra_env)
        if self.is_runc:
            # runc's CRIU inherits our environment: without this it may hang on VMs whose
            # hardware breakpoints do not fire (deltabox sets it for its own CRIU runs).
            env.setdefault("CRIU_FAULT", "130")
        files = []
        try:
            if stdin is None:
                if input is not None:
                    f = tempfile.TemporaryFile(dir=self.tmpdir)
                    f.write(input.encode() if isinstance(input, str) else input)
                    f.seek(0)
                else:
                    f = open(os.devnull, "rb")
                files.append(f)
                stdin = f
            outf = errf = None
            if stdout is None:
                outf = tempfile.TemporaryFile(dir=self.tmpdir)
                files.append(outf)
                stdout = outf
            if stderr is None:
                errf = tempfile.TemporaryFile(dir=self.tmpdir)
                files.append(errf)
                stderr = errf
            preexec = None
            placeholders = []
            if fds:
                pass_fds = tuple(pass_fds) + tuple(fds)
                # park the sources at >= 100 so that no target number clobbers a source
                items = [(tgt, fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 100))
                         for tgt, src in fds.items()]
                # subprocess insists that every pass_fds entry is open: hold closed target
                # numbers with a placeholder until Popen returns
                for tgt in fds:
                    try:
                        os.fstat(tgt)
                    except OSError:
                        ph = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                        if ph != tgt:
                            os.dup2(ph, tgt, inheritable=False)
                            os.close(ph)
                        placeholders.append(tgt)

                def preexec():
                    for tgt, src in items:
                        os.dup2(src, tgt)  # dup2 clears O_CLOEXEC on the target
            t0 = time.monotonic()
            try:
                p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                     cwd=cwd or self.cwd, env=env, pass_fds=tuple(pass_fds),
                                     close_fds=True, preexec_fn=preexec)
            finally:
                if fds:
                    for _, src in items:
                        os.close(src)
                    for ph in placeholders:
                        os.close(ph)
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise AssertionError(f"timed out after {timeout}s: {shlex.join(argv)}")
            elapsed = time.monotonic() - t0
            out = err = ""
            if outf is not None:
                outf.seek(0)
                out = outf.read().decode(errors="replace")
            if errf is not None:
                errf.seek(0)
                err = errf.read().decode(errors="replace")
        finally:
            for f in files:
                f.close()
        r = Result(argv, rc, out, err, elapsed)
        self.history.append(r)
        if check and rc != 0:
            raise RuntimeFailed(f"command failed: {r!r}")
        return r

    # ------------------------------------------------------------ verb helpers

    def state(self, cid, **kw):
        r = self("state", cid, **kw)
        return json.loads(r.out)

    def status(self, cid):
        """The status string, or None if the container does not exist."""
        r = self("state", cid, check=False)
        if r.rc != 0:
            return None
        return json.loads(r.out)["status"]

    def list_json(self, **kw):
        r = self("list", "--format", "json", **kw)
        return json.loads(r.out)

    def list_ids(self):
        return [ln for ln in self("list", "-q").out.split("\n") if ln]

    @staticmethod
    def _create_flags(bundle=None, pid_file=None, console_socket=None, no_pivot=False,
                      no_new_keyring=False, preserve_fds=None):
        a = []
        if bundle is not None:
            a += ["--bundle", getattr(bundle, "path", bundle)]
        if pid_file is not None:
            a += ["--pid-file", pid_file]
        if console_socket is not None:
            a += ["--console-socket", console_socket]
        if no_pivot:
            a.append("--no-pivot")
        if no_new_keyring:
            a.append("--no-new-keyring")
        if preserve_fds is not None:
            a += ["--preserve-fds", str(preserve_fds)]
        return a

    def create(self, cid, bundle, *, check=True, pid_file=None, console_socket=None,
               no_pivot=False, no_new_keyring=False, preserve_fds=None, **kw):
        return self("create", *self._create_flags(bundle, pid_file, console_socket, no_pivot,
                                                  no_new_keyring, preserve_fds), cid,
                    check=check, **kw)

    def start(self, cid, **kw):
        return self("start", cid, **kw)

    def run(self, cid, bundle, *, detach=False, keep=False, check=False, pid_file=None,
            console_socket=None, no_pivot=False, no_new_keyring=False, preserve_fds=None,
            no_subreaper=False, **kw):
        """Foreground by default; check=False because the exit code is the container's."""
        a = ["run"]
        if detach:
            a.append("--detach")
        if keep:
            a.append("--keep")
        if no_subreaper:
            a.append("--no-subreaper")
        a += self._create_flags(bundle, pid_file, console_socket, no_pivot, no_new_keyring,
                                preserve_fds)
        return self(*a, cid, check=check, **kw)

    def run_detached(self, cid, bundle, **kw):
        kw.setdefault("check", True)
        return self.run(cid, bundle, detach=True, **kw)

    def kill(self, cid, sig=None, *, all=False, **kw):
        a = ["kill"]
        if all:
            a.append("--all")
        a.append(cid)
        if sig is not None:
            a.append(str(sig))
        return self(*a, **kw)

    def delete(self, cid, *, force=False, **kw):
        a = ["delete"]
        if force:
            a.append("--force")
        return self(*a, cid, **kw)

    def exec(self, cid, *args, check=False, process=None, env=(), cwd=None, user=None,
             additional_gids=(), tty=False, detach=False, pid_file=None, preserve_fds=None,
             console_socket=None, caps=(), no_new_privs=False, flags=(), **kw):
        a = ["exec"]
        if process is not None:
            a += ["--process", process]
        for e in env:
            a += ["--env", e]
        if cwd is not None:
            a += ["--cwd", cwd]
        if user is not None:
            a += ["--user", user]
        for g in additional_gids:
            a += ["--additional-gids", str(g)]
        if tty:
            a.append("--tty")
        if detach:
            a.append("--detach")
        if pid_file is not None:
            a += ["--pid-file", pid_file]
        if preserve_fds is not None:
            a += ["--preserve-fds", str(preserve_fds)]
        if console_socket is not None:
            a += ["--console-socket", console_socket]
        for c in caps:
            a += ["--cap", c]
        if no_new_privs:
            a.append("--no-new-privs")
        a += list(flags)
        a.append(cid)
        a += list(args)
        return self(*a, check=check, **kw)

    def ps(self, cid, fmt="json", *ps_args, **kw):
        a = ["ps", "--format", fmt, cid] + list(ps_args)
        return self(*a, **kw)

    def cleanup(self, *ids):
        """Best effort delete --force, for finally blocks."""
        for cid in ids:
            try:
                self("delete", "--force", cid, check=False, timeout=30)
            except AssertionError:
                pass
