"""How fast: env steps per second of a started runner (``measure``, on one
runner's envs; ``measure_once``, built and closed around it), and the
seconds until a docker pool is ready (``container_startup``).

Its own module so that one clock loop (``timed``) times every runner
alike, whichever driver makes its rounds, apart from the suites'
bookkeeping of groups and rows.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..vector_env import make_vec
from .drivers import start
from .runners import Runner, make_envs
from .workloads import Workload


def timed(round_: Callable[[np.ndarray], Any], actions: np.ndarray, seconds: float, warmup: float) -> tuple[int, float]:
    """Rounds run in ``seconds`` of wall time after ``warmup`` seconds, and the exact time taken."""
    mask = len(actions) - 1  # len is a power of two
    clock = time.perf_counter
    end = clock() + warmup
    i = 0
    while clock() < end:
        round_(actions[i & mask])
        i += 1
    rounds = 0
    began = clock()
    end = began + seconds
    while True:
        round_(actions[rounds & mask])
        rounds += 1
        now = clock()
        if now >= end:
            break
    return rounds, now - began


def measure(envs, seconds: float, warmup: float | None = None, seed: int = 0, *,
            runner: str | Runner = "rock_vec", batch_size: int | None = None, policy=None) -> float:
    """Env steps per second of ``envs``, built by ``make_envs(runner, ...)``.

    Starts the runner's driver (a reset), runs rounds for ``warmup`` seconds
    (default: a quarter of ``seconds``, 0.1 to 0.5 s), then counts rounds for
    ``seconds`` of wall time; env steps = rounds x rows per round (num_envs,
    or batch_size for the async API). Async envs are drained after the
    timing. The envs stay open: the caller closes them (see ``measure_once``).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if warmup is None:
        warmup = min(0.5, max(0.1, seconds / 4))
    drive = start(runner, envs, envs.num_envs, batch_size, seed, policy)
    rounds, elapsed = timed(drive.round, drive.actions, seconds, warmup)
    drive.finish()
    return rounds * drive.rows / elapsed


def measure_once(runner: str, workload: str | Workload, num_envs: int, layout: int | None = None,
                 seconds: float = 1.0, warmup: float | None = None, batch_size: int | None = None) -> float:
    """Builds, measures (``measure``) and closes one runner's envs."""
    envs = make_envs(runner, workload, num_envs, layout, batch_size)
    try:
        return measure(envs, seconds, warmup, runner=runner, batch_size=batch_size)
    finally:
        envs.close()


def container_startup(num_envs: int) -> float:
    """Seconds until a docker pool of ``num_envs`` CartPoles, one container
    each, is ready (every worker has built its env); the pool is closed."""
    began = time.perf_counter()
    envs = make_vec("CartPole-v1", num_envs, envs_per_worker=1, backend="docker")
    took = time.perf_counter() - began
    envs.close()
    return took
