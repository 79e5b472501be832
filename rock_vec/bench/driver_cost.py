"""The learner's own cost of a ``rock_vec.ray`` step, per pool, and how many
pools one learner core can drive (the ray suite's second table).

Every step costs the driver (the trainer's process) Ray's work for one call
per pool: submitting it, receiving the reply, joining the arrays. That CPU
time is what bounds one learner: at ``c(P)`` seconds of driver CPU per step
over ``P`` pools, one core steps the vector env at most ``1 / c(P)`` times a
second. It is measured as the driver process's CPU time (every thread's:
Ray's own threads in the driver do part of the work) over a run of steps, on
the pools this machine can host; beyond them ``c(P) = a + b P`` is
extrapolated from the measured points, and the table says which rows are
which.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

from .timing import timed
from .workloads import workload_named

#: Pool counts of the model's table.
MODEL_POOLS = (1, 4, 16, 64)
#: Envs per pool in the measurement (cheap envs: the driver's cost, not the envs', is measured).
ENVS_PER_POOL = 8


def measure_driver(pools: int, seconds: float = 1.0, workload: str = "cartpole", repeats: int = 3,
                   progress: Callable[[str], object] | None = None) -> dict:
    """Driver CPU per step of ``rock_vec.ray.make_vec`` over ``pools`` pools
    of one CPU (``ENVS_PER_POOL`` envs each), the median of ``repeats`` runs
    of ``seconds``.

    Returns:
        ``{"pools", "driver_us" (CPU per step), "per_pool_us", "steps_per_s" (wall), "measured": True}``.
    """
    from ..ray import make_vec

    wl = workload_named(workload)
    envs = make_vec(wl.env_id, pools * ENVS_PER_POOL, pools=pools, cpus_per_pool=1, **wl.kwargs)
    try:
        envs.reset(seed=0)
        actions = np.stack([envs.action_space.sample() for _ in range(16)])  # a power of two, as timed wants
        runs = []
        for rep in range(repeats):
            timed(envs.step, actions, seconds / 5, 0.0)  # warm-up, outside the CPU clock's interval
            cpu = time.process_time()
            steps, elapsed = timed(envs.step, actions, seconds, 0.0)
            runs.append(((time.process_time() - cpu) / steps, steps / elapsed))
            if progress:
                progress(f"driver cost, {pools} pool(s): run {rep + 1}/{repeats}")
    finally:
        envs.close()
    driver = statistics.median(r[0] for r in runs)
    return {"pools": pools, "driver_us": driver * 1e6, "per_pool_us": driver * 1e6 / pools,
            "steps_per_s": statistics.median(r[1] for r in runs), "measured": True}


def model(measured: list[dict], pools: tuple[int, ...] = MODEL_POOLS) -> list[dict]:
    """Rows for ``pools``: measured where a row was, else ``a + b P`` fitted
    (least squares) to the measured rows (``b`` alone from one row)."""
    xs = np.array([m["pools"] for m in measured], float)
    ys = np.array([m["driver_us"] for m in measured], float)
    if len(xs) > 1 and np.ptp(xs) > 0:
        b, a = np.polyfit(xs, ys, 1)
    else:
        a, b = 0.0, float(ys[0] / xs[0])
    by_pools = {m["pools"]: m for m in measured}
    rows = []
    for p in sorted(set(pools) | set(by_pools)):
        if p in by_pools:
            rows.append(dict(by_pools[p]))
        else:
            us = a + b * p
            rows.append({"pools": p, "driver_us": us, "per_pool_us": us / p, "steps_per_s": None,
                         "measured": False})
    for r in rows:
        r["most_steps_per_s"] = 1e6 / r["driver_us"]
        r["env_steps_per_s"] = r["most_steps_per_s"] * r["pools"] * ENVS_PER_POOL
    return rows


def format_driver_costs(rows: list[dict]) -> str:
    """The model's rows as a table."""
    head = (f"{'pools':>5} | {'':>9} | {'driver CPU per step us':>22} | {'per pool-step us':>16} | "
            f"{'most vector-env steps/s on one core':>35} | {f'env steps/s at {ENVS_PER_POOL} envs per pool':>30}")
    lines = ["the learner's own cost of rock_vec.ray's step (driver CPU, every thread), and what one learner core "
             "can drive", head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['pools']:>5} | {'measured' if r['measured'] else 'modelled':>9} | {r['driver_us']:>22,.0f} | "
                     f"{r['per_pool_us']:>16,.0f} | {r['most_steps_per_s']:>35,.0f} | {r['env_steps_per_s']:>30,.0f}")
    return "\n".join(lines)
