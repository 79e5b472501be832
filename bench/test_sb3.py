"""Stable-Baselines3's VecEnv.step on CartPole-v1 x16: rock_vec's RockVecEnv
against SB3's SubprocVecEnv, with DummyVecEnv for reference
(``rock-vec bench --suite sb3``). Skipped without stable-baselines3.

    pytest bench/test_sb3.py --benchmark-only

A call is one VecEnv.step of 16 envs: env steps/s = 16 / mean.
SubprocVecEnv takes a while to start (each process imports SB3 and torch).
"""

import pytest

NUM_ENVS = 16


@pytest.mark.parametrize("runner", ["sb3_rock_vec", "sb3_subproc", "sb3_dummy"])
def test_sb3_step(benchmark, stepper, runner):
    step = stepper(runner, "cartpole", NUM_ENVS)
    benchmark.group = f"sb3 cartpole x{NUM_ENVS}"
    benchmark.extra_info.update(workload="cartpole", num_envs=NUM_ENVS, runner=runner)
    benchmark(step)
