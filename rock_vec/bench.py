"""Throughput workloads and runners, shared by ``rock-vec bench`` and bench/.

A *workload* is an env and its kwargs; a *runner* is a way to vectorise it:

- ``rock_vec``: ``rock_vec.make_vec`` with a layout (``None``: the default
  layout; an int: ``envs_per_worker``);
- ``gym_sync``: ``gymnasium.vector.SyncVectorEnv``;
- ``gym_async``: ``gymnasium.vector.AsyncVectorEnv(shared_memory=True)``
  (gymnasium's default start method: fork on Linux).

Every runner keeps its defaults otherwise (``copy=True``: each step returns
fresh arrays), and every env is built with ``gymnasium.make``, so all carry
the same wrappers.

    from rock_vec.bench import run_suite
    rows = run_suite(["cartpole"], [16], repeats=3, seconds=1.0)
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import gymnasium as gym
import numpy as np

from .synthetic import SYNTHETIC_MAKE_ID
from .vector_env import make_vec


@dataclass(frozen=True)
class Workload:
    """An env id, its kwargs, and what it stands for."""

    name: str
    env_id: str
    kwargs: dict = field(default_factory=dict)
    description: str = ""


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("cartpole", "CartPole-v1", {},
             "CartPole-v1: 4 float32 obs, a step of a few microseconds; measures per-step overhead"),
    Workload("atari_like", SYNTHETIC_MAKE_ID, {"obs_shape": (84, 84, 4), "obs_dtype": "uint8"},
             "uint8 (84, 84, 4) frames (28 KiB), no step cost; measures moving Atari-sized observations"),
    Workload("image_f32", SYNTHETIC_MAKE_ID, {"obs_shape": (3, 224, 224), "obs_dtype": "float32"},
             "float32 (3, 224, 224) images (588 KiB), no step cost; measures bandwidth"),
    Workload("busy100", SYNTHETIC_MAKE_ID, {"obs_shape": (4,), "obs_dtype": "float32", "step_us": 100},
             "4 float32 obs, 100 us of busy CPU per step; measures parallel speed-up"),
)}

RUNNERS = ("rock_vec", "gym_sync", "gym_async")
PEERS = ("gym_sync", "gym_async")
#: Layouts a sweep tries: the default, then envs_per_worker values (each
#: capped at num_envs by ``layouts_for``).
SWEEP_LAYOUTS = (None, 1, 2, 4, 8, 16, 32)


def usable_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def layout_label(layout: int | None) -> str:
    return "default" if layout is None else f"epw={layout}"


def layouts_for(layouts: Iterable[int | None], num_envs: int) -> list[int | None]:
    """The layouts that apply to ``num_envs`` envs: None (default) and each
    envs_per_worker value <= num_envs that gives a new number of workers
    (the default layout has one worker per usable CPU)."""
    layouts = list(layouts)
    out: list[int | None] = []
    seen_workers: set[int] = set()
    if None in layouts:
        out.append(None)
        seen_workers.add(min(num_envs, usable_cpus()))
    for layout in layouts:
        if layout is None:
            continue
        workers = -(-num_envs // layout)
        if layout <= num_envs and workers not in seen_workers:
            seen_workers.add(workers)
            out.append(layout)
    return out


def _workload(workload: str | Workload) -> Workload:
    if isinstance(workload, Workload):
        return workload
    try:
        return WORKLOADS[workload]
    except KeyError:
        raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}") from None


def _rock_vec_envs(wl: Workload, num_envs: int, layout: int | None):
    return make_vec(wl.env_id, num_envs, envs_per_worker=layout, **wl.kwargs)


def make_envs(runner: str, workload: str | Workload, num_envs: int, layout: int | None = None) -> gym.vector.VectorEnv:
    """Builds ``runner``'s vector env of ``num_envs`` copies of ``workload``.

    Args:
        runner: one of ``RUNNERS``.
        workload: a name in ``WORKLOADS`` or a ``Workload``.
        num_envs: number of sub-environments.
        layout: rock_vec only: ``None`` (default layout) or envs_per_worker.

    Raises:
        ValueError: on an unknown runner or workload, or a layout given to a
            runner other than rock_vec.
    """
    wl = _workload(workload)
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    if runner == "rock_vec":
        return _rock_vec_envs(wl, num_envs, layout)
    if layout is not None:
        raise ValueError(f"layout applies to rock_vec only, not {runner}")
    fns = [functools.partial(gym.make, wl.env_id, **wl.kwargs) for _ in range(num_envs)]
    if runner == "gym_sync":
        return gym.vector.SyncVectorEnv(fns)
    return gym.vector.AsyncVectorEnv(fns, shared_memory=True)


def action_batches(envs: gym.vector.VectorEnv, count: int = 16, seed: int = 0) -> np.ndarray:
    """``count`` batches of valid actions, stacked: shape (count, num_envs, ...)."""
    space = envs.action_space
    space.seed(seed)
    return np.stack([np.asarray(space.sample()) for _ in range(count)])


def measure(envs: gym.vector.VectorEnv, seconds: float, warmup: float | None = None, seed: int = 0) -> float:
    """Env steps per second of ``envs`` (batch steps x num_envs).

    Resets, steps for ``warmup`` seconds (default: a quarter of ``seconds``,
    0.1 to 0.5 s), then counts batch steps for ``seconds`` of wall time. The
    env stays open: the caller closes it (see ``measure_once``).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if warmup is None:
        warmup = min(0.5, max(0.1, seconds / 4))
    actions = action_batches(envs, seed=seed)
    mask = len(actions) - 1  # len is a power of two
    step = envs.step
    envs.reset(seed=seed)
    clock = time.perf_counter
    end = clock() + warmup
    i = 0
    while clock() < end:
        step(actions[i & mask])
        i += 1
    steps = 0
    start = clock()
    end = start + seconds
    while True:
        step(actions[steps & mask])
        steps += 1
        now = clock()
        if now >= end:
            break
    return steps * envs.num_envs / (now - start)


def measure_once(runner: str, workload: str | Workload, num_envs: int, layout: int | None = None,
                 seconds: float = 1.0, warmup: float | None = None) -> float:
    """Builds, measures (``measure``) and closes one vector env."""
    envs = make_envs(runner, workload, num_envs, layout)
    try:
        return measure(envs, seconds, warmup)
    finally:
        envs.close()


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def run_suite(workloads: Sequence[str], env_counts: Sequence[int], repeats: int = 3, seconds: float = 2.0,
              layouts: Sequence[int | None] | None = None, runners: Sequence[str] = RUNNERS,
              warmup: float | None = None, progress: Callable[[str], Any] | None = None) -> list[dict]:
    """Measures every (workload, num_envs, runner[, layout]) ``repeats`` times.

    For each (workload, num_envs) every vector env is built once; then each
    repeat measures all of them in turn (the order rotates per repeat), so
    slow drifts of a noisy machine spread over all runners.

    Args:
        workloads: names in ``WORKLOADS``.
        env_counts: numbers of envs.
        repeats: measurements per runner; the median is reported.
        seconds: wall time of one measurement (after its warm-up).
        layouts: rock_vec layouts (None: default, int: envs_per_worker),
            filtered per num_envs by ``layouts_for``. Default: ``[None]``;
            ``SWEEP_LAYOUTS`` sweeps.
        runners: a subset of ``RUNNERS``.
        warmup: seconds of warm-up per measurement (see ``measure``).
        progress: called with a line of text after each measurement.

    Returns:
        One dict per (workload, num_envs, runner, layout), in order:
        ``workload, num_envs, runner, layout`` (label, or None for peers),
        ``num_workers`` (worker processes; None for gym_sync), ``steps_per_s`` (median), ``samples``,
        ``vs_gym_sync`` and ``vs_gym_async`` (this row's median over that
        peer's, None when the peer was not run), and for rock_vec rows
        ``best`` (True on the fastest rock_vec layout of its group).
    """
    for w in workloads:
        _workload(w)
    for r in runners:
        if r not in RUNNERS:
            raise ValueError(f"unknown runner {r!r}; choose from {', '.join(RUNNERS)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    layouts = [None] if layouts is None else list(layouts)
    total = len(workloads) * repeats * sum(
        len([r for r in runners if r != "rock_vec"])
        + ("rock_vec" in runners) * len(layouts_for(layouts, n)) for n in env_counts)
    done = 0
    rows: list[dict] = []
    for w in workloads:
        for n in env_counts:
            entries: list[dict] = []  # one per vector env to measure
            try:
                # Peers first: gym_async forks the learner, best before rock_vec pools exist.
                for r in sorted(runners, key=lambda r: r == "rock_vec"):
                    for layout in (layouts_for(layouts, n) if r == "rock_vec" else [None]):
                        envs = make_envs(r, w, n, layout)
                        entries.append({"runner": r, "layout": layout, "envs": envs,
                                        "num_workers": _num_workers(r, envs), "samples": []})
                built = len(entries)
                entries = _drop_duplicate_layouts(entries)
                total -= repeats * (built - len(entries))
                for rep in range(repeats):
                    shift = rep % len(entries)
                    for e in entries[shift:] + entries[:shift]:
                        rate = measure(e["envs"], seconds, warmup, seed=rep)
                        e["samples"].append(rate)
                        done += 1
                        if progress:
                            label = e["runner"] + (f" {layout_label(e['layout'])}" if e["runner"] == "rock_vec" else "")
                            progress(f"[{done}/{total}] {w} x{n} {label}: {rate:,.0f} steps/s "
                                     f"(repeat {rep + 1}/{repeats})")
            finally:
                for e in entries:
                    e["envs"].close()
            rows.extend(_summarise(w, n, entries))
    return rows


def _num_workers(runner: str, envs) -> int | None:
    """Worker processes behind ``envs`` (None: none, it steps in the learner)."""
    if runner == "rock_vec":
        return envs.num_workers
    return envs.num_envs if runner == "gym_async" else None


def _drop_duplicate_layouts(entries: list[dict]) -> list[dict]:
    """Closes rock_vec envs whose worker count repeats an earlier layout's
    (same count, same split), should ``layouts_for`` have missed one."""
    kept, seen = [], set()
    for e in entries:
        if e["runner"] == "rock_vec":
            workers = e["num_workers"]
            if workers in seen:
                e["envs"].close()
                continue
            seen.add(workers)
        kept.append(e)
    return kept


def _summarise(workload: str, num_envs: int, entries: list[dict]) -> list[dict]:
    rows = []
    for e in sorted(entries, key=lambda e: RUNNERS.index(e["runner"])):  # rock_vec rows first
        rows.append({
            "workload": workload, "num_envs": num_envs, "runner": e["runner"],
            "layout": layout_label(e["layout"]) if e["runner"] == "rock_vec" else None,
            "num_workers": e["num_workers"],
            "steps_per_s": statistics.median(e["samples"]), "samples": e["samples"],
        })
    peers = {r["runner"]: r["steps_per_s"] for r in rows if r["runner"] in PEERS}
    ours = [r for r in rows if r["runner"] == "rock_vec"]
    best = max(ours, key=lambda r: r["steps_per_s"]) if ours else None
    for r in rows:
        for p in PEERS:
            r[f"vs_{p}"] = _ratio(r["steps_per_s"], peers.get(p))
        if r["runner"] == "rock_vec":
            r["best"] = r is best
    return rows


def quick_settings() -> dict:
    """What ``rock-vec bench --quick`` runs."""
    return {"workloads": ["cartpole", "atari_like"], "env_counts": [16], "repeats": 3, "seconds": 1.0,
            "layouts": [None]}
