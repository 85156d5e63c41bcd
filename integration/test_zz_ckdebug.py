import os
from test_checkpoint import run_counter, checkpoint, ckpt_dirs
from lib import util
def test_debug(t):
    cid, b = run_counter(t)
    img = t.path("img")
    r = t.rt("checkpoint", "--image-path", img, "--leave-running", cid, check=False)
    print(r, oct(os.stat(img).st_mode), oct(os.stat(t.path()).st_mode))
    os.makedirs(t.path("img2"))
    r = t.rt("checkpoint", "--image-path", t.path("img2"), "--parent-path", "../img", cid, check=False)
    print(r)
    print(t.rt.status(cid))
    r = t.rt("checkpoint", "--image-path", t.path("img3"), "--parent-path", "../nonexist", cid, check=False)
    print(r)
    r = t.rt("checkpoint", "--image-path", t.path("img3/a/b"), "--status-fd", "55", "--leave-running", cid, check=False)
    print(r, oct(os.stat(t.path("img3/a")).st_mode))
    r = t.rt("restore", "--image-path", t.path("nonexist"), "-d", "--bundle", b.path, "newid", check=False)
    print(r, os.path.exists(t.path("nonexist")))
    r = t.rt("restore", "--image-path", t.path("img"), "-d", "--bundle", b.path, "--empty-ns", "pid", "newid2", check=False)
    print(r)
    r = t.rt("restore", "--image-path", t.path("img"), "-d", "--bundle", b.path, "--manage-cgroups-mode", "x", "newid2", check=False)
    print(r)
    assert False
