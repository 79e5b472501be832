"""rock_vec CartPole-v1 at 64 envs across pool layouts (envs_per_worker).

    pytest bench/test_layouts.py --benchmark-only
"""

import pytest

NUM_ENVS = 64


@pytest.mark.parametrize("envs_per_worker", [None, 1, 2, 4, 8, 16, 32, 64],
                         ids=lambda v: "default" if v is None else f"epw{v}")
def test_cartpole_layout(benchmark, stepper, envs_per_worker):
    step = stepper("rock_vec", "cartpole", NUM_ENVS, envs_per_worker)
    benchmark.group = f"cartpole x{NUM_ENVS} layouts"
    benchmark.extra_info.update(num_envs=NUM_ENVS, envs_per_worker=envs_per_worker,
                                num_workers=step.envs.num_workers)
    benchmark(step)
