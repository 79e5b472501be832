"""Nothing outlives a pool, however the learner ends (the peers' users see programs hang
after an exception, N tracebacks on Ctrl-C, processes pile up, fork deadlock with threads).

Each test runs a real learner program in a subprocess and ends it the way
users' programs end: SIGKILL, Ctrl-C, an exception, a plain exit.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rock_vec.segment import registry
from rock_vec.segment.mapping import NAME_PREFIX, SHM_DIR
from rock_vec.segment.processes import pid_alive

LEARNER = Path(__file__).resolve().parents[1] / "lifetime_learner.py"


def start(mode, context=None):
    proc = subprocess.Popen([sys.executable, str(LEARNER), mode, *([context] if context else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return proc, json.loads(line)


alive = pid_alive  # a zombie is gone; a process that ends while its stat is read too


def segments_of(pid):
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"{NAME_PREFIX}{pid}.")]


def listed(learner_pid):
    return [e for e in registry.entries() if e.get("learner_pid") == learner_pid]


def wait_unlisted(learner_pid, seconds):
    """Whether the learner's listings went within ``seconds`` (rock-vec ps shows no stale pool)."""
    deadline = time.monotonic() + seconds
    while listed(learner_pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return time.monotonic()
        time.sleep(0.01)
    return None


def test_sigkill_of_the_learner_leaves_nothing_after_one_second():
    proc, pids = start("sleep")
    assert listed(pids["learner"])
    assert not segments_of(pids["learner"])  # the name is gone as soon as the workers hold the segment
    proc.kill()
    proc.wait()
    killed = time.monotonic()
    gone = wait_gone(pids["workers"] + [pids["server"]], 1.0)
    assert gone is not None, "processes outlived the learner by 1 s"
    assert gone - killed < 0.5
    assert not segments_of(pids["learner"])
    assert wait_unlisted(pids["learner"], 1.0), "the fork server left the dead learner's listing for rock-vec ps"


def test_the_fork_server_lives_apart_and_outlives_a_killed_process_group():
    """What a shell does to a job, and Ray to an actor's children: the server
    is in no group of the learner's and not its child, so it cleans up."""
    proc, pids = start("sleep")
    with open(f"/proc/{pids['server']}/stat") as f:
        ppid, pgid, sid = (int(x) for x in f.read().split(")")[-1].split()[1:4])
    assert ppid != pids["learner"]
    assert pgid != os.getpgid(pids["learner"]) and sid != os.getsid(pids["learner"])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_gone(pids["workers"] + [pids["server"]], 1.0) is not None, "processes outlived the learner by 1 s"


@pytest.mark.parametrize("to", ["learner", "process_group"])
def test_ctrl_c_ends_the_learner_with_one_traceback_and_nothing_left(to):
    proc, pids = start("loop")
    time.sleep(0.3)
    if to == "learner":
        proc.send_signal(signal.SIGINT)
    else:  # what a terminal does: every process of the foreground group gets it
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode != 0
    assert err.count("KeyboardInterrupt") == 1, err
    assert err.count("Traceback") == 1, err
    assert wait_gone(pids["workers"] + [pids["server"]], 1.0) is not None


def test_an_exception_in_the_training_loop_exits_and_cleans_up():
    proc, pids = start("raise")
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 1 and "the training loop failed" in err
    assert wait_gone(pids["workers"] + [pids["server"]], 1.0) is not None


def test_exiting_without_close_still_closes_the_pool():
    proc, pids = start("exit_without_close")
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert wait_gone(pids["workers"] + [pids["server"]], 1.0) is not None
    assert "Traceback" not in err


def test_workers_that_cannot_be_told_leave_on_the_learner_heartbeat_within_two_seconds():
    proc, pids = start("sleep")
    os.kill(pids["server"], signal.SIGSTOP)  # the fork server can neither kill nor be noticed dying
    try:
        proc.kill()
        proc.wait()
        gone = wait_gone(pids["workers"], 2.0)
        assert gone is not None, "workers outlived a dead learner's heartbeat by 2 s"
        assert wait_unlisted(pids["learner"], 1.0), "the workers left the dead learner's listing"
    finally:
        os.kill(pids["server"], signal.SIGKILL)
        os.kill(pids["server"], signal.SIGCONT)
    assert wait_gone([pids["server"]], 1.0) is not None


def test_spawned_workers_leave_on_the_heartbeat_when_the_learner_is_killed():
    proc, pids = start("sleep", "spawn")
    proc.kill()
    proc.wait()
    assert wait_gone(pids["workers"], 2.0) is not None, "spawned workers outlived their learner by 2 s"
    assert wait_unlisted(pids["learner"], 1.0), "the spawned workers left the dead learner's listing"


def test_a_learner_that_already_runs_threads_starts_pools_normally():
    proc, pids = start("threads")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "done" in out
