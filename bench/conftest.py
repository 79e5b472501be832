"""Fixtures for the pytest-benchmark suites (run: pytest bench/ --benchmark-only).

Each test builds one vector env through ``rock_vec.bench.make_envs`` (the
builders ``rock-vec bench`` uses), warms it up, benchmarks one batch step,
and closes it.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("pytest_benchmark", reason="pip install 'rock-vec[bench]'")

from rock_vec.bench import action_batches, make_envs  # noqa: E402

WARMUP_SECONDS = 0.2


@pytest.fixture
def stepper():
    """``stepper(runner, workload, num_envs, layout=None)``: a built, reset and
    warmed-up vector env's one-batch-step function (actions cycle through 16
    precomputed batches). Every env built is closed after the test."""
    built = []

    def build(runner: str, workload: str, num_envs: int, layout: int | None = None):
        envs = make_envs(runner, workload, num_envs, layout)
        built.append(envs)
        actions = action_batches(envs)
        envs.reset(seed=0)
        state = {"i": 0}

        def step():
            state["i"] += 1
            envs.step(actions[state["i"] & 15])

        end = time.perf_counter() + WARMUP_SECONDS
        while time.perf_counter() < end:
            step()
        step.envs = envs
        return step

    yield build
    for envs in built:
        envs.close()
