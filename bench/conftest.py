"""Fixtures for the pytest-benchmark suites (run: pytest bench/ --benchmark-only).

Each test builds one runner's envs through
``rock_vec.bench.runners.make_envs`` (the builders ``rock-vec bench`` uses),
starts them with the runner's driver (``rock_vec.bench.drivers.start``: the
same reset and actions), warms them up, benchmarks one call, and closes them. A call always makes ``num_envs`` env
steps: one batch step, or ``num_envs / batch_size`` recv/send rounds for the
async runners, so env steps/s = num_envs / mean for every runner.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("pytest_benchmark", reason="pip install 'rock-vec[bench]'")

from rock_vec.bench.drivers import start  # noqa: E402
from rock_vec.bench.runners import make_envs, unavailable  # noqa: E402

WARMUP_SECONDS = 0.2


@pytest.fixture
def stepper():
    """``stepper(runner, workload, num_envs, layout=None, batch_size=None)``:
    a built, started and warmed-up runner's call (``num_envs`` env steps).
    Skips the test when the runner's optional module is missing. Every env
    built is drained and closed after the test."""
    built = []

    def build(runner: str, workload: str, num_envs: int, layout: int | None = None, batch_size: int | None = None):
        reason = unavailable(runner)
        if reason:
            pytest.skip(reason)
        envs = make_envs(runner, workload, num_envs, layout, batch_size)
        drive = start(runner, envs, num_envs, batch_size)
        built.append((envs, drive))
        actions, mask, rounds = drive.actions, len(drive.actions) - 1, num_envs // drive.rows
        round_ = drive.round
        state = {"i": 0}

        def step():
            i = state["i"]
            for k in range(i, i + rounds):
                round_(actions[k & mask])
            state["i"] = i + rounds

        end = time.perf_counter() + WARMUP_SECONDS
        while time.perf_counter() < end:
            step()
        step.envs = envs
        return step

    yield build
    for envs, drive in built:
        try:
            drive.finish()
        finally:
            envs.close()
