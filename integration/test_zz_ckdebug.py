import os, subprocess, time
from test_checkpoint import *
def test_debug(t):
    cid, b = run_counter(t, script="for i in 1 2 3; do sleep 1000000 & done; echo 5 > /tmp/count; wait")
    images, work = ckpt_dirs(t)
    checkpoint(t, cid)
    t.rt("delete", "-f", cid, check=False)
    cid, b = run_counter(t, name="d", script="for i in 1 2 3; do sleep 1000000 & done; echo 5 > /tmp/count; wait")
    checkpoint(t, cid)
    argv = [t.rt.path, "--root", t.rt.root, "restore", "-d", "--image-path", images, "--work-path", work, "--bundle", b.path, cid]
    subprocess.run(["strace", "-tt", "-e", "trace=!rt_sigprocmask,mmap,mprotect,brk,close,fcntl,read,newfstatat,fstat,futex,lseek,pread64,getdents64", "-o", "/tmp/ckx/st"] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert False
