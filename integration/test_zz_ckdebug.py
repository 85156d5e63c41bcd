import os
from test_checkpoint import run_counter, checkpoint, ckpt_dirs
from lib import util
def test_debug(t):
    cid, b = run_counter(t)
    r = checkpoint(t, cid, check=False)
    images, work = ckpt_dirs(t)
    print(r)
    log = util.read_file(os.path.join(work, "dump.log"), "")
    print("\n".join(l for l in log.splitlines() if "rror" in l or "Warn" in l)[-3000:])
    print(log[-3000:])
    assert False
