"""What users of the peers hit when things go wrong (a bare EOFError for a
worker's death, hangs, a TypeError masking the env's exception, an OOM kill seen as
EOFError): an env's own exception reaches the learner once, with its
traceback; a dead worker is a named error within 0.2 s, never a hang; bad
input is refused before anything is sent, and the pool stays usable (bad
actions: tests/vector/test_drop_in.py)."""

import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest

import rock_vec
import rock_vec.segment.codec
from rock_vec.errors import RemoteTraceback, WorkerDiedError
from sample_envs import FailingEnv, SpaceEnv

GOOD = np.zeros(4, np.int64)


def failing_pool(how, fail_index=2, fail_step=3, **options):
    fns = [lambda i=i: FailingEnv(index=i, fail_index=fail_index, fail_step=fail_step, how=how) for i in range(4)]
    return rock_vec.AsyncVectorEnv(fns, num_workers=2, **options)


# ---- an env raises ----


def test_an_env_exception_keeps_its_type_message_and_remote_traceback():
    envs = failing_pool("raise")
    try:
        envs.reset(seed=0)
        with pytest.raises(KeyError, match="boom in env 2") as info:
            for _ in range(5):
                envs.step(GOOD)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "sample_envs.py" in cause.text and "raise KeyError" in cause.text
        assert any("in env 2 during step (worker 1" in note for note in info.value.__notes__)
    finally:
        envs.close()


def test_the_pool_keeps_working_after_an_env_exception():
    envs = failing_pool("raise")
    try:
        envs.reset(seed=0)
        with pytest.raises(KeyError):
            for _ in range(5):
                envs.step(GOOD)
        obs, *_ = envs.step(GOOD)
        assert obs.shape == (4, 2) and obs[0, 0] == 4.0
    finally:
        envs.close()


def test_an_exception_in_an_env_constructor_is_raised_by_the_constructor():
    def bad():
        raise ValueError("no such level")

    with pytest.raises(ValueError, match="no such level") as info:
        rock_vec.AsyncVectorEnv([lambda: SpaceEnv(), lambda: SpaceEnv(), bad], num_workers=3)
    assert "while creating its envs" in "".join(info.value.__notes__)


def test_an_exception_type_unknown_to_the_learner_becomes_a_worker_error():
    def bad():
        class LocalError(Exception):
            pass

        raise LocalError("only the worker knows me")

    with pytest.raises(rock_vec.WorkerError, match="LocalError: only the worker knows me"):
        rock_vec.AsyncVectorEnv([lambda: SpaceEnv(), bad], num_workers=2)


# ---- a worker dies ----


@pytest.mark.parametrize("context", [None, "spawn"])
@pytest.mark.parametrize("how,ended", [("sigkill", "SIGKILL"), ("segfault", "SIGSEGV"), ("exit", "code 7")])
def test_a_worker_that_dies_mid_step_is_a_named_error_within_200ms(how, ended, context):
    envs = failing_pool(how, context=context)
    try:
        envs.reset(seed=0)
        envs.step(GOOD)
        envs.step(GOOD)
        started = time.monotonic()
        with pytest.raises(WorkerDiedError) as info:
            envs.step(GOOD)
        elapsed = time.monotonic() - started
        err = info.value
        assert elapsed < 0.2, f"noticed after {elapsed:.3f} s"
        assert err.worker == 1 and err.env_ids == [2, 3] and err.pid > 0
        assert ended in str(err) and "worker 1" in str(err) and f"pid {err.pid}" in str(err)
        with pytest.raises(WorkerDiedError):  # the pool stays broken, loudly
            envs.step(GOOD)
    finally:
        envs.close()


def test_a_worker_killed_from_outside_while_idle_is_noticed_on_the_next_step():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, num_workers=2)
    try:
        envs.reset(seed=0)
        os.kill(envs.worker_pids[0], signal.SIGKILL)
        time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(WorkerDiedError, match="SIGKILL"):
            envs.step(GOOD)
        assert time.monotonic() - started < 0.2
    finally:
        envs.close()


def test_restart_replaces_a_dead_worker_and_reports_its_envs_truncated():
    envs = failing_pool("sigkill", on_worker_failure="restart")
    try:
        envs.reset(seed=0)
        envs.step(GOOD)
        envs.step(GOOD)
        obs, rew, term, trunc, info = envs.step(GOOD)  # env 2 kills its worker here
        assert trunc.tolist() == [False, False, True, True]
        assert info["_worker_restarted"].tolist() == [False, False, True, True]
        assert obs[2:].tolist() == [[0, 0], [0, 0]]  # fresh episodes
        for _ in range(5):
            obs, *_ = envs.step(GOOD)
        assert obs[0, 0] == 8.0  # the healthy worker never noticed
    finally:
        envs.close()


@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_a_pool_built_anew_reports_what_a_replaced_worker_reports(mode):
    """``_restarted_step`` (for a pool built in place of a lost one, as
    rock_vec.ray does) returns, type for type, what a real worker replaced
    mid-step returns for its envs, and the step after it too."""
    from same import assert_same

    def pool(how, fail_step):
        fns = [lambda i=i: FailingEnv(index=i, fail_index=0, fail_step=fail_step, how=how) for i in range(3)]
        return rock_vec.AsyncVectorEnv(fns, learner_envs=0, num_workers=1, autoreset_mode=mode,
                                       on_worker_failure="restart")

    replaced, anew = pool("sigkill", 2), pool("raise", 100)
    try:
        replaced.reset(seed=0), anew.reset(seed=0)
        replaced.step(np.zeros(3, np.int64))
        restart = replaced.step(np.zeros(3, np.int64))  # env 0 kills the only worker: every env restarts
        flagged = restart[4]["final_info"] if mode == "SameStep" else restart[4]  # SAME_STEP: the ended step's info
        assert restart[3].all() and flagged["worker_restarted"].all()
        assert_same(anew._restarted_step(), restart, "the restart step")
        if mode == "Disabled":  # the user resets what ended
            assert_same(anew.reset(options={"reset_mask": np.ones(3, bool)}),
                        replaced.reset(options={"reset_mask": np.ones(3, bool)}), "the reset after it")
        assert_same(anew.step(np.ones(3, np.int64)), replaced.step(np.ones(3, np.int64)), "the step after it")
    finally:
        replaced.close(), anew.close()


def test_a_crash_loop_spends_the_restart_budget_then_raises():
    fns = [lambda i=i: FailingEnv(index=i, fail_index=1, fail_step=1, how="exit") for i in range(2)]
    envs = rock_vec.AsyncVectorEnv(fns, num_workers=2, on_worker_failure="restart", max_restarts=2)
    try:
        envs.reset()
        envs.step(np.zeros(2, np.int64))  # restart 1
        envs.step(np.zeros(2, np.int64))  # NEXT_STEP reset of the truncated envs
        envs.step(np.zeros(2, np.int64))  # restart 2
        envs.step(np.zeros(2, np.int64))
        with pytest.raises(WorkerDiedError, match="restart budget of 2 spent"):
            envs.step(np.zeros(2, np.int64))
    finally:
        envs.close()


# ---- bad input: refused before dispatch, the next good call works ----


def good_step_still_works(envs, actions):
    obs, *_ = envs.step(actions)
    assert obs.shape[0] == envs.num_envs


def test_bad_seeds_and_reset_masks_are_refused():
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 4, num_workers=2)
    try:
        with pytest.raises(ValueError, match="length must match num_envs=4"):
            envs.reset(seed=[1, 2, 3])
        with pytest.raises(TypeError, match="seed for env 1 is 'x'"):
            envs.reset(seed=[1, "x", 3, 4])
        with pytest.raises(TypeError, match="must be a numpy array"):
            envs.reset(options={"reset_mask": [True] * 4})
        with pytest.raises(ValueError, match=r"must have shape `\(4,\)`"):
            envs.reset(options={"reset_mask": np.ones(3, bool)})
        with pytest.raises(TypeError, match="dtype=np.bool_"):
            envs.reset(options={"reset_mask": np.ones(4, np.int8)})
        with pytest.raises(ValueError, match="at least one True"):
            envs.reset(options={"reset_mask": np.zeros(4, bool)})
        envs.reset(seed=0)
        good_step_still_works(envs, GOOD)
    finally:
        envs.close()


def test_unknown_attributes_and_failing_calls_leave_the_pool_usable():
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 4, num_workers=2)
    try:
        envs.reset(seed=0)
        with pytest.raises(AttributeError, match="no_such_attr"):
            envs.get_attr("no_such_attr")
        with pytest.raises(rock_vec.segment.codec.CodecError, match=r"call\('echo'\) per env\[0\]\['args'\]\[0\] of type function"):
            envs.call("echo", lambda: None)  # the result is not plain data: it cannot travel back
        good_step_still_works(envs, GOOD)
    finally:
        envs.close()


def test_an_info_too_big_for_its_slot_names_the_env_and_the_option():
    class BigInfo(SpaceEnv):
        def step(self, action):
            obs, rew, term, trunc, _ = super().step(action)
            return obs, rew, term, trunc, {"blob": np.zeros(10_000, np.uint8)}

    envs = rock_vec.AsyncVectorEnv([lambda: BigInfo()] * 2, info_bytes=4096)
    try:
        envs.reset(seed=0)
        with pytest.raises(Exception, match=r"info of env 0 needs \d+ bytes"):
            envs.step(np.zeros(2, np.int64))
    finally:
        envs.close()
    envs = rock_vec.AsyncVectorEnv([lambda: BigInfo()] * 2, info_bytes=20_000)
    try:
        envs.reset(seed=0)
        _, _, _, _, info = envs.step(np.zeros(2, np.int64))
        assert info["blob"].shape == (2, 10_000)
    finally:
        envs.close()


def test_unpicklable_env_fns_fail_fast_with_a_clear_message():
    import threading

    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot be sent to the workers"):
        rock_vec.AsyncVectorEnv([lambda: (lock, SpaceEnv())[1]])


@pytest.fixture
def memory_cgroup():
    """A cgroup v1 memory group limited to 150 MiB (needs root and the v1 memory controller)."""
    root = "/sys/fs/cgroup/memory"
    path = os.path.join(root, f"rock_vec_test_{os.getpid()}")
    try:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(150 << 20))
    except OSError as exc:
        pytest.skip(f"cannot make a memory-limited cgroup here ({exc}): needs root and cgroup v1's memory controller")
    yield path
    for _ in range(50):
        try:
            os.rmdir(path)
            break
        except OSError:
            time.sleep(0.05)


def test_a_worker_killed_for_memory_is_reported_as_out_of_memory(memory_cgroup):
    from sample_envs import HungryEnv

    fns = [lambda: HungryEnv(), lambda: HungryEnv(memory_cgroup, eat_mib=400)]
    envs = rock_vec.AsyncVectorEnv(fns, num_workers=2)
    try:
        envs.reset(seed=0)
        envs.step(np.zeros(2, np.int64))
        with pytest.raises(WorkerDiedError, match="out-of-memory killer") as info:
            envs.step(np.zeros(2, np.int64))
        assert info.value.out_of_memory and info.value.env_ids == [1]
    finally:
        envs.close()


def test_an_observation_of_a_custom_space_that_is_not_plain_data_names_the_space():
    class Opaque(gym.spaces.Space):
        def sample(self, mask=None, probability=None):
            return object()

        def contains(self, x):
            return True

        def __eq__(self, other):
            return isinstance(other, Opaque)

    envs = None
    with pytest.raises(rock_vec.segment.codec.CodecError, match=r"observation of env 0 \(space .*Opaque"):
        envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv(observation_space=Opaque())] * 2)
        envs.reset(seed=0)
    if envs is not None:
        envs.close()
