"""``rock_vec.synthetic``: the benchmarks' synthetic env, its registration
with gymnasium and its step cost, jitter, episodes and observations."""

from __future__ import annotations

import importlib
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest

import rock_vec
from rock_vec import synthetic
from rock_vec.synthetic import SYNTHETIC_ID, SYNTHETIC_MAKE_ID, SyntheticEnv


def test_make_vec_builds_synthetic_envs_from_the_module_id():
    envs = rock_vec.make_vec(SYNTHETIC_MAKE_ID, 2, obs_shape=(4, 4), obs_dtype="uint8", step_us=1)
    try:
        envs.reset(seed=0)
        assert envs.step(np.array([0, 1]))[0].shape == (2, 4, 4)
    finally:
        envs.close()


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(synthetic)
        synthetic.register_envs()
    assert gym.spec(SYNTHETIC_ID).entry_point == "rock_vec.synthetic:SyntheticEnv"
    env = gym.make(SYNTHETIC_MAKE_ID, obs_shape=[2, 3])  # JSON turns tuples into lists
    assert env.observation_space.shape == (2, 3)


def _step_times(seed: int, n: int = 20) -> list[int]:
    env = SyntheticEnv(step_us=30, jitter_us=20)
    env.reset(seed=seed)
    times = []
    for _ in range(n):
        env.step(0)
        times.append(env.last_step_ns)
    return times


def test_step_jitter_repeats_with_the_reset_seed():
    a, b, c = _step_times(7), _step_times(7), _step_times(8)
    assert a == b and a != c
    assert all(10_000 <= t <= 50_000 for t in a)
    assert len(set(a)) > 1
    assert _step_times(7)[:3] == a[:3]


def test_step_cost_is_busy_cpu():
    env = SyntheticEnv(step_us=2000)
    env.reset(seed=0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(20):
        env.step(0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert wall >= 0.04
    assert cpu >= 0.5 * wall  # a sleep would use no CPU (loose: the machine is shared)


def test_episodes_truncate_and_observations_change_in_reused_buffers():
    env = SyntheticEnv(obs_shape=(84, 84, 4), obs_dtype="uint8", episode_len=5)
    obs0, _ = env.reset(seed=0)
    first = obs0.copy()
    results = [env.step(i % 4) for i in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]
    assert not any(r[2] for r in results)
    assert not np.array_equal(results[0][0], first)
    assert results[0][0] is not results[1][0] and results[0][0] is results[2][0]  # two buffers, no allocation
    assert all(env.observation_space.contains(r[0]) for r in results)
    env = SyntheticEnv(copy_obs=True)
    a, b, c = env.reset(seed=0)[0], env.step(0)[0], env.step(0)[0]
    assert not np.shares_memory(a, c) and not np.shares_memory(a, b)


def test_float_observations_stay_in_bounds():
    env = SyntheticEnv(obs_shape=(3, 8, 8), obs_dtype="float32")
    env.reset(seed=0)
    for _ in range(300):
        obs = env.step(0)[0]
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("kwargs", [
    {"obs_dtype": "int16"}, {"obs_shape": ()}, {"obs_shape": (0, 3)}, {"step_us": -1}, {"jitter_us": -1},
    {"episode_len": 0},
])
def test_bad_constructor_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        SyntheticEnv(**kwargs)
