"""The docker backend against worker processes laid out alike (every env in
a worker, one per CPU), on CartPole and (84,84,4) frames x16, and the time
until 16 and 64 containers are ready (``rock-vec bench --suite docker``).
Skipped without a Docker engine and the worker image (``rock-vec image build``).

    pytest bench/test_docker.py --benchmark-only

A step call is one batch step of 16 envs: env steps/s = 16 / mean.
"""

import pytest

import rock_vec
from rock_vec.bench.runners import docker_unavailable

NUM_ENVS = 16


@pytest.mark.parametrize("workload", ["cartpole", "atari_like"])
@pytest.mark.parametrize("runner", ["rock_vec_docker", "rock_vec_workers"])
def test_docker_step(benchmark, stepper, runner, workload):
    step = stepper(runner, workload, NUM_ENVS)
    benchmark.group = f"docker {workload} x{NUM_ENVS}"
    benchmark.extra_info.update(workload=workload, num_envs=NUM_ENVS, runner=runner)
    benchmark(step)


@pytest.mark.parametrize("num_envs", [16, 64])
def test_containers_ready(benchmark, num_envs):
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    benchmark.group = f"docker start x{num_envs}"
    pools = []

    def start():  # until every container's worker has built its env; closing is not timed
        pools.append(rock_vec.make_vec("CartPole-v1", num_envs, envs_per_worker=1, backend="docker"))

    try:
        benchmark.pedantic(start, rounds=3, warmup_rounds=0, teardown=lambda: pools.pop().close())
    finally:
        for envs in pools:
            envs.close()
