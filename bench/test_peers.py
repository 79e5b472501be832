"""Every peer on every workload at 4, 16 and 64 envs, the pytest-benchmark
twin of ``rock-vec bench --peers`` (rock_vec.bench.suites.peer_groups: the
same runners, async batches of half the envs, PufferLib in each of its
layouts).

    pytest bench/test_peers.py --benchmark-only
    pytest bench/test_peers.py --benchmark-only -k "busy100 and x16"

Grouped by (workload, num_envs): pytest-benchmark's table puts every runner
of a group side by side. A call makes ``num_envs`` env steps, so env
steps/s = num_envs / mean. A peer that does not install is skipped with the
reason (PufferLib: see bench/README.md, "Installing PufferLib").
"""

import pytest

from rock_vec.bench.runners import RUNNER_SPECS, layout_label
from rock_vec.bench.suites import GYM_WORKLOADS, peer_groups

CASES = [
    pytest.param(g.workload, g.num_envs, runner, layout, g.batch_size if RUNNER_SPECS[runner].batched else None,
                 id=f"{g.workload}-x{g.num_envs}-{runner}" + (f"-{layout_label(layout)}" if layout else ""))
    for g in peer_groups(GYM_WORKLOADS, (4, 16, 64))
    for runner in g.runners
    for layout in (RUNNER_SPECS[runner].own_layouts(g.num_envs) if RUNNER_SPECS[runner].own_layouts else (None,))
]


@pytest.mark.parametrize("workload, num_envs, runner, layout, batch_size", CASES)
def test_peer(benchmark, stepper, workload, num_envs, runner, layout, batch_size):
    step = stepper(runner, workload, num_envs, layout, batch_size)
    benchmark.group = f"{workload} x{num_envs}"
    benchmark.extra_info.update(workload=workload, num_envs=num_envs, runner=runner, layout=layout_label(layout),
                                batch_size=batch_size)
    benchmark(step)
