"""Whether a learner lives, as stale segments and listings are judged."""

import os
import subprocess
import sys
import time

from rock_vec.segment.processes import pid_alive


def test_a_live_process_lives_and_an_exited_unreaped_one_does_not():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert pid_alive(child.pid) and pid_alive(os.getpid())
        child.stdin.close()  # it exits; not reaped until wait(): a zombie meanwhile
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat") as f:
                if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        else:
            raise AssertionError("the child did not exit")
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert not pid_alive(child.pid)
