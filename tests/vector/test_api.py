"""The gymnasium VectorEnv contract: attributes, call order, calls, closing."""

import multiprocessing

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError
from gymnasium.vector import AutoresetMode

import rock_vec
from sample_envs import DEVICE_ENV_ID, FailingEnv, SpaceEnv


@pytest.fixture
def envs():
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv(render_mode="rgb_array")] * 4, num_workers=2)
    yield envs
    envs.close()


def test_it_is_a_gymnasium_vector_env_with_gymnasiums_attributes(envs):
    ref = gym.vector.SyncVectorEnv([lambda: SpaceEnv(render_mode="rgb_array")] * 4)
    assert isinstance(envs, gym.vector.VectorEnv)
    assert envs.num_envs == 4
    assert envs.single_observation_space == ref.single_observation_space
    assert envs.single_action_space == ref.single_action_space
    assert envs.observation_space == ref.observation_space
    assert envs.action_space == ref.action_space
    assert isinstance(envs.metadata["autoreset_mode"], AutoresetMode)
    assert envs.metadata == ref.metadata
    assert envs.render_mode == "rgb_array"
    assert envs.num_workers == 2
    ref.close()


def test_reset_accepts_an_int_or_a_list_of_seeds(envs):
    a, _ = envs.reset(seed=7)
    b, _ = envs.reset(seed=[7, 8, 9, 10])
    np.testing.assert_array_equal(a, b)
    assert envs.np_random_seed == (7, 8, 9, 10)


def test_np_random_returns_copies_of_every_envs_generator(envs):
    ref = gym.vector.SyncVectorEnv([lambda: SpaceEnv()] * 4)
    envs.reset(seed=3)
    ref.reset(seed=3)
    ours, theirs = envs.np_random, ref.np_random
    assert [g.integers(1 << 30) for g in ours] == [g.integers(1 << 30) for g in theirs]
    ref.close()


def test_reset_options_reach_every_env(envs):
    _, info = envs.reset(seed=0, options={"level": 3})
    assert info["options"]["level"].tolist() == [3, 3, 3, 3]


def test_call_get_attr_set_attr_and_render(envs):
    envs.reset(seed=0)
    assert envs.call("echo", 1, two=2) == tuple({"args": [1], "kwargs": {"two": 2}, "t": 0} for _ in range(4))
    assert envs.get_attr("max_len") == (8, 8, 8, 8)
    envs.set_attr("max_len", [1, 2, 3, 4])
    assert envs.get_attr("max_len") == (1, 2, 3, 4)
    envs.set_attr("max_len", 5)
    assert envs.get_attr("max_len") == (5,) * 4
    frames = envs.render()
    assert len(frames) == 4 and frames[0].shape == (4, 6, 3) and frames[0].dtype == np.uint8


def test_call_refuses_reset_step_and_close(envs):
    for name in ("reset", "step", "close"):
        with pytest.raises(ValueError, match=f"use `{name}` directly"):
            envs.call(name)
    envs.reset()  # and the pool is still fine


def test_async_pairs_are_guarded_like_gymnasiums(envs):
    with pytest.raises(NoAsyncCallError):
        envs.step_wait()
    with pytest.raises(NoAsyncCallError):
        envs.reset_wait()
    with pytest.raises(NoAsyncCallError):
        envs.call_wait()
    envs.reset_async(seed=0)
    with pytest.raises(AlreadyPendingCallError):
        envs.step_async(np.zeros(4, np.int64))
    with pytest.raises(AlreadyPendingCallError):
        envs.call_async("echo")
    envs.reset_wait()
    envs.step_async(np.zeros(4, np.int64))
    obs, rew, term, trunc, info = envs.step_wait(timeout=10)
    assert obs.shape == (4, 3) and rew.dtype == np.float64 and term.dtype == np.bool_


def test_a_slow_step_times_out_and_can_still_be_collected():
    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv(step_seconds=0.3)] * 2, learner_envs=0)
    try:
        envs.reset()
        envs.step_async(np.zeros(2, np.int64))
        with pytest.raises(multiprocessing.TimeoutError):
            envs.step_wait(timeout=0.05)
        obs, *_ = envs.step_wait(timeout=5)
        assert obs.shape == (2, 2)
        assert envs.step(np.zeros(2, np.int64))[0][0, 0] == 2.0
    finally:
        envs.close()


def test_close_is_idempotent_and_use_after_close_raises():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=2)
    pids = envs.worker_pids
    envs.close()
    envs.close()
    assert envs.closed
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            import os

            os.kill(pid, 0)
    with pytest.raises(ClosedEnvironmentError):
        envs.step(np.zeros(2, np.int64))
    with pytest.raises(ClosedEnvironmentError):
        envs.reset()


def test_close_with_terminate_kills_a_busy_worker_at_once():
    import time

    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv(how="hang", fail_step=1)] * 2)
    envs.reset()
    envs.step_async(np.zeros(2, np.int64))
    start = time.monotonic()
    envs.close(terminate=True)
    assert time.monotonic() - start < 2.0


def test_close_closes_every_sub_env_wrappers_included(tmp_path):
    marker = tmp_path / "closed"

    class Recorder(gym.Wrapper):
        def close(self):
            with open(marker, "a") as f:
                f.write("x")
            super().close()

    envs = rock_vec.AsyncVectorEnv([lambda: Recorder(gym.make("CartPole-v1"))] * 3, num_workers=2)
    assert marker.read_text() == "x"  # the probe env the learner built for the spaces, as gymnasium does
    envs.close()
    assert marker.read_text() == "xxxx"


def test_arguments_that_cannot_apply_raise_a_clear_error():
    with pytest.raises(ValueError, match="custom gymnasium `worker`"):
        rock_vec.AsyncVectorEnv([lambda: SpaceEnv()], worker=lambda *a: None)
    with pytest.raises(ValueError, match="wait_policy"):
        rock_vec.AsyncVectorEnv([lambda: SpaceEnv()], wait_policy="fast")
    with pytest.raises(ValueError, match="on_worker_failure"):
        rock_vec.AsyncVectorEnv([lambda: SpaceEnv()], on_worker_failure="ignore")
    with pytest.raises(ValueError, match="env_fns is empty"):
        rock_vec.AsyncVectorEnv([])


def test_gymnasium_arguments_are_accepted():
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 3, shared_memory=False, copy=False, context="spawn",
                                   daemon=False, observation_mode="same", autoreset_mode="SameStep",
                                   max_concurrency=1)
    try:
        assert envs.num_workers == 1
        assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    finally:
        envs.close()


def test_observation_mode_different_batches_differing_bounds():
    fns = [lambda lo=lo: SpaceEnv(observation_space=gym.spaces.Box(lo, lo + 1, (2,), np.float32)) for lo in range(3)]
    envs = rock_vec.AsyncVectorEnv(fns, observation_mode="different")
    ref = gym.vector.SyncVectorEnv(fns, observation_mode="different")
    try:
        assert envs.observation_space == ref.observation_space
        np.testing.assert_array_equal(envs.reset(seed=1)[0], ref.reset(seed=1)[0])
    finally:
        envs.close()
        ref.close()


def test_make_vec_rejects_an_unknown_id_and_bad_sizes():
    with pytest.raises(gym.error.Error):
        rock_vec.make_vec("NoSuchEnv-v0", num_envs=2)
    with pytest.raises(ValueError, match="num_envs"):
        rock_vec.make_vec("CartPole-v1", num_envs=0)
    with pytest.raises(ValueError, match="cannot host"):
        rock_vec.make_vec("CartPole-v1", num_envs=8, num_workers=2, envs_per_worker=2)


@pytest.mark.parametrize("num_envs,epw", [(1, None), (1, 1), (5, 2), (256, 256), (300, 64)])
def test_one_env_one_per_worker_uneven_and_large_pools_step(num_envs, epw):
    envs = rock_vec.make_vec("CartPole-v1", num_envs=num_envs, envs_per_worker=epw)
    try:
        obs, _ = envs.reset(seed=0)
        obs, *_ = envs.step(np.ones(num_envs, np.int64))
        assert obs.shape == (num_envs, 4)
    finally:
        envs.close()


@pytest.mark.parametrize("options,match", [
    ({"batch_size": 0}, r"batch_size must be an int >= 1 or None, got 0"),
    ({"batch_size": 5}, r"batch_size must be an int in \[1, num_envs=4\], got 5"),
    ({"envs_per_worker": 0}, "envs_per_worker must be an int >= 1 or None"),
    ({"num_workers": -1}, "num_workers must be an int >= 1 or None"),
    ({"learner_envs": -1}, "learner_envs must be an int >= 0 or None"),
    ({"learner_envs": 4}, r"learner_envs must be an int in \[0, num_envs=4\).*at least one env steps in a worker"),
    ({"info_bytes": 0}, "info_bytes must be an int >= 64"),
    ({"wait_policy": "nap"}, "wait_policy must be one of"),
    ({"on_worker_failure": "ignore"}, "on_worker_failure must be one of"),
    ({"start_timeout": 0}, "start_timeout must be a number of seconds > 0"),
    ({"context": "thread"}, "cannot find context for 'thread'"),
])
def test_config_edge_values_raise_clear_errors(options, match):
    with pytest.raises(ValueError, match=match):
        rock_vec.make_vec("CartPole-v1", num_envs=4, **options)


def test_a_keyword_of_both_the_env_and_the_pool_is_refused_until_env_kwargs_say_whose():
    with pytest.raises(TypeError, match=rf"make_vec: 'device' is both a rock_vec option and a keyword of "
                                        rf"{DEVICE_ENV_ID}'s constructor; give the env's as env_kwargs="):
        rock_vec.make_vec(DEVICE_ENV_ID, num_envs=2, device="cpu")
    with pytest.raises(TypeError, match="'batch_size' is both"):
        rock_vec.make_vec(DEVICE_ENV_ID, num_envs=2, batch_size=1)
    envs = rock_vec.make_vec(DEVICE_ENV_ID, num_envs=2, env_kwargs={"device": "meta", "batch_size": 7},
                             envs_per_worker=1, learner_envs=0)
    try:
        assert envs.get_attr("device") == ("meta", "meta")
        assert envs.get_attr("batch_size") == (7, 7)
        assert envs.num_workers == 2
    finally:
        envs.close()
    # With env_kwargs given, every other keyword is an option.
    with pytest.raises(TypeError, match="make_vec got an unexpected keyword argument 'max_episode_steps'"):
        rock_vec.make_vec("CartPole-v1", num_envs=2, env_kwargs={}, max_episode_steps=5)
    # A name the env does not claim still goes where its name says.
    envs = rock_vec.make_vec("CartPole-v1", num_envs=2, envs_per_worker=1, max_episode_steps=5)
    try:
        assert envs.num_workers == 2
        envs.reset(seed=0)
        truncated = [envs.step(np.zeros(2, np.int64))[3] for _ in range(5)]
        assert not np.any(truncated[:4]) and truncated[4].tolist() == [True, True]
    finally:
        envs.close()


def test_numpy_ints_are_ints_for_every_option():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=np.int64(4), batch_size=np.int32(2), envs_per_worker=np.int64(2),
                             info_bytes=np.uint16(4096), max_restarts=np.int8(1))
    try:
        assert envs.num_workers == 2 and type(envs._pool.batch_size) is int
        envs.async_reset(seed=0)
        obs, *_, info = envs.recv()
        assert obs.shape == (2, 4)
    finally:
        envs.close()


def test_an_unknown_option_is_a_type_error_naming_the_valid_ones():
    with pytest.raises(TypeError, match="AsyncVectorEnv got an unexpected keyword argument 'env_per_worker'; "
                                        "rock_vec's options are envs_per_worker, num_workers, learner_envs"):
        rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 2, env_per_worker=1)


def test_observation_mode_same_refuses_envs_whose_spaces_differ_like_gymnasium():
    fns = [lambda lo=lo: SpaceEnv(observation_space=gym.spaces.Box(lo, lo + 1, (2,), np.float32)) for lo in range(3)]
    with pytest.raises(RuntimeError, match="observation_mode='same'.*use `observation_mode='different'`"):
        rock_vec.AsyncVectorEnv(fns, num_workers=3)
    with pytest.raises(RuntimeError, match="action space"):
        rock_vec.AsyncVectorEnv([lambda: SpaceEnv(), lambda: SpaceEnv(action_space=gym.spaces.Discrete(4))])
