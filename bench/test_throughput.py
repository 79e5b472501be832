"""One batch step of each workload under rock_vec (default layout),
gymnasium's SyncVectorEnv and AsyncVectorEnv(shared_memory=True).

    pytest bench/test_throughput.py --benchmark-only
    pytest bench/test_throughput.py --benchmark-only -k "cartpole and 16"

Tests are grouped by (workload, num_envs), so pytest-benchmark's table puts
the three runners side by side. A "call" is one batch step: env steps/s =
num_envs / mean.
"""

import pytest

from rock_vec.bench.suites import RUNNERS
from rock_vec.bench.workloads import WORKLOADS

ENV_COUNTS = (4, 16, 64)


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("num_envs", ENV_COUNTS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_step(benchmark, stepper, workload, num_envs, runner):
    step = stepper(runner, workload, num_envs)
    benchmark.group = f"{workload} x{num_envs}"
    benchmark.extra_info.update(workload=workload, num_envs=num_envs, runner=runner)
    benchmark(step)
