"""A worker is a hostile neighbour: whatever an env in it writes over the
shared segment, the learner gives a clear error or correct results, never a
crash, a hang or code execution, and close() still ends everything.

The hostile env (sample_envs.ScribbleEnv) finds the segment through
/proc/self/maps, as any code in a worker could, and writes random bytes
over one part of it in the middle of a step. Every pool here keeps its envs
in workers (learner_envs=0): an env in the learner's own process is the
learner's."""

import os
import signal
import time

import numpy as np
import pytest

import rock_vec
from rock_vec.segment.codec import CodecError
from rock_vec.errors import RockVecError
from sample_envs import ScribbleEnv

#: What a learner may raise when a worker wrote garbage: rock_vec's own
#: errors (a dead worker, a corrupted segment, a worker's report it cannot
#: rebuild) and the codec's refusal of garbage.
CLEAR_ERRORS = (RockVecError, CodecError)
REGIONS = ["all", "header", "counters", "own_slot", "own_rows", "other_rows", "rings"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_until_error(step, rounds: int) -> BaseException | None:
    """Calls step() `rounds` times, each within 5 s; returns the first error."""
    for _ in range(rounds):
        started = time.monotonic()
        try:
            step()
        except CLEAR_ERRORS as exc:
            assert time.monotonic() - started < 5.0, f"the error took {time.monotonic() - started:.1f} s"
            return exc
        assert time.monotonic() - started < 5.0, f"a step took {time.monotonic() - started:.1f} s"
    return None


def closes_and_leaves_nothing(envs, pids) -> None:
    started = time.monotonic()
    envs.close(timeout=2)
    assert time.monotonic() - started < 6.0, f"close() took {time.monotonic() - started:.1f} s"
    deadline = time.monotonic() + 2
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(alive(p) for p in pids), "a worker outlived close()"


@pytest.mark.parametrize("what", REGIONS)
def test_garbage_written_over_the_segment_in_a_step_gives_a_clear_error_or_results(what):
    fns = [lambda i=i: ScribbleEnv(index=i, what=what, hostile=i == 2) for i in range(4)]
    envs = rock_vec.AsyncVectorEnv(fns, num_workers=2, learner_envs=0)
    pids = envs.worker_pids
    try:
        envs.reset(seed=0)
        error = run_until_error(lambda: envs.step(np.zeros(4, np.int64)), 6)
        if error is None and what not in ("own_rows", "other_rows"):
            # Nothing noticed: then the envs the scribble did not touch must still give correct results.
            obs, rew, term, trunc, info = envs.step(np.zeros(4, np.int64))
            assert rew[[0, 1, 3]].tolist() == [1.0, 1.0, 1.0]
    finally:
        closes_and_leaves_nothing(envs, pids)


@pytest.mark.parametrize("what", ["all", "counters", "own_rows", "rings"])
def test_garbage_written_during_async_batches_gives_a_clear_error_or_results(what):
    fns = [lambda i=i: ScribbleEnv(index=i, what=what, hostile=i == 2) for i in range(4)]
    envs = rock_vec.AsyncVectorEnv(fns, num_workers=2, batch_size=2)
    pids = envs.worker_pids
    try:
        envs.async_reset(seed=0)

        def round_():
            *_, info = envs.recv(timeout=3)
            envs.send(np.zeros(2, np.int64), info["env_id"])

        error = run_until_error(round_, 10)
        assert error is None or isinstance(error, CLEAR_ERRORS)
    except Exception as exc:  # a recv that timed out is a hang by another name
        pytest.fail(f"{type(exc).__name__}: {exc}")
    finally:
        closes_and_leaves_nothing(envs, pids)


@pytest.mark.parametrize("context", [None, "spawn"])
def test_a_frozen_worker_is_killed_and_reported_within_two_seconds_and_close_still_works(context):
    envs = rock_vec.AsyncVectorEnv([lambda i=i: ScribbleEnv(index=i, hostile=False) for i in range(4)],
                                   num_workers=2, learner_envs=0, context=context)
    pids = envs.worker_pids
    envs.reset(seed=0)
    os.kill(pids[1], signal.SIGSTOP)  # frozen, as a paused container
    try:
        envs.step_async(np.zeros(4, np.int64))
        with pytest.raises(rock_vec.errors.TimeoutError):
            envs.step_wait(timeout=0.5)
        started = time.monotonic()
        with pytest.raises(rock_vec.WorkerDiedError, match=r"worker 1 .*stopped answering \(no heartbeat for 2\.\d s"):
            envs.step_wait()
        assert time.monotonic() - started < 2.5  # 2 s after its last beat, half a second of it already gone
    finally:
        closes_and_leaves_nothing(envs, pids)


def test_a_slow_step_is_not_taken_for_a_frozen_worker():
    from sample_envs import FailingEnv

    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv(step_seconds=2.6)] * 2, num_workers=2, learner_envs=0)
    try:
        envs.reset(seed=0)
        obs, *_ = envs.step(np.zeros(2, np.int64))  # 2.6 s busy in Python: the C heartbeat goes on
        assert obs.shape == (2, 2)
    finally:
        envs.close()


def test_an_error_report_that_does_not_decode_raises_the_codecs_refusal_naming_the_worker():
    """A worker that says it failed but leaves garbage for its report gives
    the codec's own CodecError (not a generic one), naming the worker."""
    envs = rock_vec.make_vec("CartPole-v1", 4, num_workers=2, learner_envs=0)
    try:
        pool = envs._io.pool
        pool.arrays["mailbox"][1, :16] = 0xFF
        pool.seg.slot(1).reply_len = 16
        error = pool._worker_exception([1])
        assert type(error) is CodecError
        assert any("in worker 1, whose error report does not decode" in note for note in error.__notes__)
    finally:
        envs.close()
