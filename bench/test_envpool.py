"""EnvPool next to rock_vec on CartPole-v1, for reference
(``rock-vec bench --suite envpool``): async batches (64 envs, batch 16) and a
sync step (16 envs). EnvPool rows are skipped without envpool.

    pytest bench/test_envpool.py --benchmark-only

A call makes num_envs env steps (async: four recv/send rounds of 16):
env steps/s = num_envs / mean.
"""

import pytest

CASES = [  # (group, runner, num_envs, batch_size)
    ("async x64 batch 16", "rock_vec_async", 64, 16),
    ("async x64 batch 16", "envpool_async", 64, 16),
    ("sync x16", "rock_vec", 16, None),
    ("sync x16", "envpool_sync", 16, None),
]


@pytest.mark.parametrize("group, runner, num_envs, batch_size", CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_cartpole(benchmark, stepper, group, runner, num_envs, batch_size):
    step = stepper(runner, "cartpole", num_envs, batch_size=batch_size)
    benchmark.group = f"cartpole {group}"
    benchmark.extra_info.update(workload="cartpole", num_envs=num_envs, runner=runner, batch_size=batch_size)
    benchmark(step)
