"""Pool start-up: build, first reset and close, against gymnasium AsyncVectorEnv.

    pytest bench/test_startup.py --benchmark-only

rock_vec's first pool in a process also starts its fork server (~0.5 s);
the benchmark's warm-up round pays that, later rounds show a pool's own cost.
"""

import gymnasium as gym
import pytest

import rock_vec


def start_rock_vec(num_envs):
    envs = rock_vec.make_vec("CartPole-v1", num_envs=num_envs, envs_per_worker=8)
    envs.reset(seed=0)
    envs.close()


def start_gym_async(num_envs):
    envs = gym.vector.AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * num_envs)
    envs.reset(seed=0)
    envs.close()


@pytest.mark.parametrize("num_envs", [16, 64])
@pytest.mark.parametrize("runner", [start_rock_vec, start_gym_async], ids=["rock_vec", "gym_async"])
def test_pool_startup(benchmark, runner, num_envs):
    benchmark.group = f"startup cartpole x{num_envs}"
    benchmark.pedantic(runner, args=(num_envs,), rounds=5, warmup_rounds=1)
