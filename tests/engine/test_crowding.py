"""The learner's view of its own other threads (rock_vec.engine.crowding),
measured on real threads of this process; workers kept off its CPU, on real
processes and a real pool."""

import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import pytest
from busy_threads import Burner

import rock_vec
from rock_vec._core import lib
from rock_vec.engine.crowding import EVERY, HOLD, Crowding, KeepOff

CPUS = os.sched_getaffinity(0)
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="keeping a process off a CPU needs two CPUs to choose from")


def _sample_after(crowding: Crowding, seconds: float) -> bool:
    time.sleep(seconds)
    return crowding.sample()


def _reading_after(crowding: Crowding, seconds: float) -> bool:
    """The commands up to the next reading of the clocks, ``seconds`` apart in all."""
    return [_sample_after(crowding, seconds / EVERY) for _ in range(EVERY)][-1]


def test_a_learner_alone_is_not_crowded():
    crowding = Crowding()
    assert not any(_sample_after(crowding, 0.001) for _ in range(20 * EVERY))


def test_another_busy_thread_crowds_the_learner_until_hold_quiet_commands_have_passed():
    crowding = Crowding()
    with Burner():
        assert _reading_after(crowding, 0.05)
    # The reading whose interval the burner stopped in may or may not count as crowded.
    quiet = [_sample_after(crowding, 0.001) for _ in range(HOLD + 2 * EVERY)]
    first_free = quiet.index(False)
    assert HOLD - 1 <= first_free <= HOLD + EVERY and not any(quiet[first_free:]), quiet


def _sleeper(cpus=None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    if cpus is not None:
        os.sched_setaffinity(proc.pid, cpus)
    return proc


@needs_two_cpus
def test_keep_off_moves_processes_off_a_cpu_and_gives_them_their_own_back():
    cpu, other = sorted(CPUS)[:2]
    free, pinned, gone = _sleeper(), _sleeper({cpu}), _sleeper()
    gone.kill()
    gone.wait()
    try:
        keep_off = KeepOff()
        keep_off.follow([free.pid, pinned.pid, gone.pid], cpu)  # a gone worker is no error: its death is a fault
        assert os.sched_getaffinity(free.pid) == CPUS - {cpu}
        assert os.sched_getaffinity(pinned.pid) == {cpu}  # a worker pinned to that one CPU stays there
        keep_off.follow([free.pid, pinned.pid], other)
        assert os.sched_getaffinity(free.pid) == CPUS - {other}
        keep_off.follow([free.pid, pinned.pid], -1)
        assert os.sched_getaffinity(free.pid) == CPUS and os.sched_getaffinity(pinned.pid) == {cpu}
    finally:
        for proc in (free, pinned):
            proc.kill()
            proc.wait()


def _step(envs, steps: int) -> None:
    for _ in range(steps):
        time.sleep(0.0002)
        envs.step(envs.action_space.sample())


@needs_two_cpus
def test_while_the_learner_is_crowded_its_workers_keep_off_its_cpu_replacements_too():
    envs = rock_vec.AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2, num_workers=1, learner_envs=0,
                                   on_worker_failure="restart")
    try:
        envs.reset(seed=0)
        p = envs.unwrapped._pool
        with Burner():
            _step(envs, 2 * EVERY)
            assert p.crowded
            assert lib.rv_current_cpu() in CPUS and p.keep_off.cpu in CPUS
            assert os.sched_getaffinity(p.pids[0]) == CPUS - {p.keep_off.cpu}
            os.kill(p.pids[0], signal.SIGKILL)
            _step(envs, 3)  # the step it died in comes back truncated, its replacement steps on
            assert p.seg.slot(0).restarts == 1 and p.keep_off.pids == p.pids
            assert os.sched_getaffinity(p.pids[0]) == CPUS - {p.keep_off.cpu}
        _step(envs, HOLD + 2 * EVERY)
        assert not p.crowded and p.keep_off.cpu == -1
        assert os.sched_getaffinity(p.pids[0]) == CPUS
    finally:
        envs.close()
