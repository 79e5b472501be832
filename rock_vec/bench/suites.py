"""The suites ``rock-vec bench`` runs, and the loop that measures them.

- the gym suite: any workloads, sizes and runners (``run_suite``; by
  default ``GYM_WORKLOADS`` and ``RUNNERS``; ``--quick``: ``quick_settings``);
- the preset suites, fixed groups with the targets of their issues
  (``SUITES``, ``run_preset``), the ray suite's on a local Ray cluster it
  starts (``cluster_of``);
- every peer side by side (``peer_groups``, ``PEER_TARGETS``).

Each comes down to groups (``groups.Group``) that ``run_groups`` measures:
every runner built once, then measured in turn, repeat after repeat. The
top of the benchmarks' modules: it names what to measure, and the modules
it builds on (workloads, runners, drivers, timing, groups) never need to
know which suite asked.

    from rock_vec.bench.suites import run_suite, run_preset
    rows = run_suite(["cartpole"], [16], repeats=3, seconds=1.0)
    rows = run_preset("async", repeats=3, seconds=1.0)   # see SUITES
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from .groups import BEST_LAYOUT, EVERY_PEER, Group, Target, cases_of, check_group, group_unavailable, summarise
from .runners import RUNNER_SPECS, layout_label, make_envs, runner_named, unavailable
from .timing import measure
from .workloads import workload_named

#: The gym suite's workloads by default (the others belong to the train and atari suites).
GYM_WORKLOADS = ("cartpole", "atari_like", "image_f32", "busy100", "jitter")
#: The runners of the default (``gym``) suite.
RUNNERS = ("rock_vec", "gym_sync", "gym_async")
#: Pool sizes the docker suite times the start of (one container per env; ``timing.container_startup``).
STARTUP_SIZES = (16, 64)


@dataclass(frozen=True)
class Suite:
    """Groups measured together; ``cluster``: (nodes, CPUs each) of the local
    Ray cluster the suite starts and runs on (``rock_vec.ray.cluster``)."""

    name: str
    description: str
    groups: tuple[Group, ...]
    cluster: tuple[int, int] | None = None


#: Every runner of the ray suite's groups: rock_vec.ray's step and send/recv, the local pool, the baselines.
RAY_RUNNERS = ("ray_rock_vec", "ray_rock_vec_async", "rock_vec", "ray_actor_per_env", "pufferlib_ray")


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("async", "jitter (10..200 us steps) x64: rock_vec async batches of 16 vs rock_vec's sync step "
                   "(target >= 1.3x); gym_async for reference",
          (Group("jitter", 64, ("rock_vec_async", "rock_vec", "gym_async"), batch_size=16, peer="rock_vec",
                 targets={"rock_vec_async": 1.3}),)),
    Suite("sb3", "CartPole-v1 x16 through SB3's VecEnv.step: RockVecEnv vs SubprocVecEnv (target >= 8x); "
                 "DummyVecEnv for reference",
          (Group("cartpole", 16, ("sb3_rock_vec", "sb3_subproc", "sb3_dummy"), peer="sb3_subproc",
                 targets={"sb3_rock_vec": 8.0}),)),
    Suite("envpool", "CartPole-v1, for reference: EnvPool async (x64, batch 16) next to rock_vec async, "
                     "EnvPool sync (x16) next to rock_vec's step",
          (Group("cartpole", 64, ("rock_vec_async", "envpool_async"), batch_size=16, peer="envpool_async"),
           Group("cartpole", 16, ("rock_vec", "envpool_sync"), peer="envpool_sync"))),
    Suite("train", "training loops, a policy forward (CPU torch, 1 thread) between steps: CleanRL's PPO MLP on "
                   "CartPole-v1 x8 (target >= 1.0x SyncVectorEnv, same results); a Nature CNN on (84,84,4) frames "
                   "x16 whose cost is about the step's, overlapped in halves (target >= 1.4x SyncVectorEnv); then "
                   "the learner gap sweep and a CleanRL-style PPO loop (rock_vec.bench.train_loops)",
          (Group("cartpole", 8, ("rock_vec", "gym_sync", "gym_async"), peer="gym_sync", policy="mlp",
                 targets={"rock_vec": 1.0}),
           Group("cnn_step", 16, ("rock_vec_overlap", "rock_vec", "gym_sync"), batch_size=8, peer="gym_sync",
                 policy="cnn", targets={"rock_vec_overlap": 1.4, "rock_vec": 1.0}))),
    Suite("docker", "the docker backend against worker processes laid out alike (every env in a worker, one per "
                    "CPU), x16 (target >= 0.95x); then the time until 16 and 64 containers are ready (target <= 3 s "
                    "for 16)",
          (Group("cartpole", 16, ("rock_vec_docker", "rock_vec_workers"), peer="rock_vec_workers",
                 targets={"rock_vec_docker": 0.95}),
           Group("atari_like", 16, ("rock_vec_docker", "rock_vec_workers"), peer="rock_vec_workers",
                 targets={"rock_vec_docker": 0.95}))),
    Suite("rllib", "RLlib sampling: one SingleAgentEnvRunner (a Ray actor of 2 CPUs, PPO's default policy) x16, "
                   "a rock_vec pool (gym_env_vectorize_mode='vector_entry_point'; through rock_vec.ray.register, "
                   "and on CartPole also through register_env directly) vs RLlib's default ('sync'); "
                   "targets >= 1.05x on CartPole-v1, >= 1.5x on a 100 us step",
          (Group("cartpole", 16, ("rllib_rock_vec", "rllib_rock_vec_direct", "rllib_sync"), peer="rllib_sync",
                 targets={"rllib_rock_vec": 1.05, "rllib_rock_vec_direct": 1.05}),
           Group("busy100", 16, ("rllib_rock_vec", "rllib_sync"), peer="rllib_sync",
                 targets={"rllib_rock_vec": 1.5}))),
    Suite("ray", "rock_vec.ray on a local Ray cluster this suite starts on this machine (2 nodes; 3 logical CPUs "
                 "each, since every runner is built before any is measured): a pool of 1 CPU on each node against "
                 "one local pool on the machine's 2 CPUs (1 ms step: targets step >= 0.9x, send/recv in halves "
                 ">= 0.95x), one Ray actor per env and PufferLib's Ray vectoriser (a worker of 1 CPU per node) on the "
                 "same cluster (targets >= 3x on the 1 ms step); then the learner's own cost per pool-step",
          (Group("busy1000", 16, RAY_RUNNERS, batch_size=8, peer="rock_vec",
                 targets={"ray_rock_vec": 0.9, "ray_rock_vec_async": 0.95},
                 versus=tuple(Target(ours, 3.0, peer) for ours in ("ray_rock_vec", "ray_rock_vec_async")
                              for peer in ("ray_actor_per_env", "pufferlib_ray"))),
           Group("busy100", 16, RAY_RUNNERS, batch_size=8, peer="rock_vec"),
           Group("cartpole", 16, RAY_RUNNERS, batch_size=8, peer="rock_vec")),
          cluster=(2, 3)),
    Suite("atari", "ALE Breakout through AtariPreprocessing and FrameStackObservation(4) x16, random actions: "
                   "rock_vec's step vs SyncVectorEnv (target >= 1.8x); async batches of 8 for reference",
          (Group("breakout", 16, ("rock_vec", "rock_vec_async", "gym_sync"), batch_size=8, peer="gym_sync",
                 targets={"rock_vec": 1.8}),)),
)}


def run_groups(groups: Sequence[Group], repeats: int = 3, seconds: float = 2.0, warmup: float | None = None,
               progress: Callable[[str], Any] | None = None) -> list[dict]:
    """Measures every runner of every group ``repeats`` times.

    For each group every runner (and layout) is built once; then each repeat
    measures all of them in turn (the order rotates per repeat), so slow
    drifts of a noisy machine spread over all runners. Runners whose
    optional module is missing are skipped (see ``runners.unavailable``);
    ``progress`` gets a line saying so.

    Returns:
        One dict per measured (group, runner, layout), in group order, then
        in the group's runner order: ``group`` (``Group.label()``),
        ``workload, num_envs, runner, api,
        batch_size`` (None for unbatched runners), ``layout`` (label, or None
        for runners without layouts), ``num_workers`` (worker processes; None
        when the envs step in the learner process), ``learner_envs`` (envs
        stepped in the learner's process), ``steps_per_s``
        (median), ``samples``, ``vs_gym_sync`` and ``vs_gym_async`` (this
        row's median over that peer's, None when the peer was not run),
        ``peer`` and ``vs_peer`` (the group's peer and the ratio to it, None
        without one), ``target`` and ``target_met`` (None without a target),
        ``vs`` ({peer: ratio} over each other runner of the group not
        rock_vec's), ``versus`` (its ``Target``s checked, see
        ``groups._versus``), and for runners with layouts ``best`` (True on
        the fastest layout of that runner in its group).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    for group in groups:
        check_group(group)
    if progress:
        for name in dict.fromkeys(r for g in groups for r in g.runners):
            if unavailable(name):
                progress(f"skipping {name}: {unavailable(name)}")
    total = repeats * sum(len(cases_of(g)) for g in groups)
    done = 0
    rows: list[dict] = []
    for group in groups:
        w, n = group.workload, group.num_envs
        entries: list[dict] = []  # one per vectorised envs to measure
        if group_unavailable(group):
            if progress:
                progress(f"skipping {group_unavailable(group)}")
            total -= repeats * len(cases_of(group))
            continue
        policy = _group_policy(group)
        try:
            for spec, layout in cases_of(group):
                batch = group.batch_size if spec.batched else None
                envs = make_envs(spec, w, n, layout, batch)
                entries.append({"runner": spec.name, "spec": spec, "layout": layout, "batch_size": batch,
                                "envs": envs, "num_workers": spec.workers(envs, n),
                                "learner_envs": spec.learner_envs(envs, n), "samples": []})
            built = len(entries)
            entries = _drop_duplicate_layouts(entries)
            total -= repeats * (built - len(entries))
            if not entries:
                continue
            for rep in range(repeats):
                shift = rep % len(entries)
                for e in entries[shift:] + entries[:shift]:
                    rate = measure(e["envs"], seconds, warmup, seed=rep, runner=e["spec"],
                                   batch_size=e["batch_size"], policy=policy)
                    e["samples"].append(rate)
                    time.sleep(e["spec"].spins_after)
                    done += 1
                    if progress:
                        label = e["runner"] + (f" {layout_label(e['layout'])}" if e["spec"].layouts else "")
                        progress(f"[{done}/{total}] {group.label()} {label}: {rate:,.0f} steps/s "
                                 f"(repeat {rep + 1}/{repeats})")
        finally:
            for e in entries:
                e["envs"].close()
        rows.extend(summarise(group, entries))
    return rows


def _group_policy(group: Group):
    """The group's policy, built once for all its runners (None without one)."""
    if group.policy is None:
        return None
    from . import policies

    probe = gym.make(workload_named(group.workload).env_id, **workload_named(group.workload).kwargs)
    try:
        return policies.make(group.policy, probe.observation_space.shape, int(probe.action_space.n))
    finally:
        probe.close()


def same_results(group: Group, steps: int = 200, seed: int = 0) -> bool:
    """Whether every vector runner of ``group`` gives the same observations,
    rewards and flags as the group's peer over ``steps`` steps of its
    policy loop (each runner with a fresh policy of the same seed)."""
    from . import policies

    results = {}
    for name in group.runners:
        spec = runner_named(name)
        if spec.api != "vector" or unavailable(spec):
            continue
        envs = make_envs(spec, group.workload, group.num_envs)
        try:
            obs, _ = envs.reset(seed=seed)
            policy = policies.make(group.policy, envs.single_observation_space.shape,
                                   int(envs.single_action_space.n), seed=seed)
            trace = []
            for _ in range(steps):
                obs, rew, term, trunc, _ = envs.step(policy(obs))
                trace.append((obs.copy(), rew.copy(), term.copy(), trunc.copy()))
            results[name] = trace
        finally:
            envs.close()
    ref = results.get(group.peer)
    return ref is not None and all(
        all(all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(x, y)) for x, y in zip(trace, ref))
        for trace in results.values())


def run_suite(workloads: Sequence[str], env_counts: Sequence[int], repeats: int = 3, seconds: float = 2.0,
              layouts: Sequence[int | None] | None = None, runners: Sequence[str] = RUNNERS,
              warmup: float | None = None, progress: Callable[[str], Any] | None = None,
              batch_size: int | None = None) -> list[dict]:
    """Measures every (workload, num_envs, runner[, layout]) ``repeats`` times
    (``run_groups`` on one group per (workload, num_envs)).

    Args:
        workloads: names in ``WORKLOADS``.
        env_counts: numbers of envs.
        repeats: measurements per runner; the median is reported.
        seconds: wall time of one measurement (after its warm-up).
        layouts: rock_vec layouts (None: default, int: envs_per_worker),
            filtered per num_envs by ``runners.layouts_for``. Default:
            ``[None]``; ``runners.SWEEP_LAYOUTS`` sweeps.
        runners: names in ``RUNNER_SPECS``; rows come in that table's order
            (rock_vec first). Missing optional ones are skipped.
        warmup: seconds of warm-up per measurement (see ``timing.measure``).
        progress: called with a line of text after each measurement.
        batch_size: for async runners (required if any is given).

    Returns:
        See ``run_groups``; ``peer``, ``vs_peer`` and ``target`` are None.
    """
    for w in workloads:
        workload_named(w)
    order = list(RUNNER_SPECS)
    runners = sorted(dict.fromkeys(runner_named(r).name for r in runners), key=order.index)
    layouts = (None,) if layouts is None else tuple(layouts)
    groups = [Group(w, n, tuple(runners), batch_size if any(runner_named(r).batched for r in runners) else None,
                    layouts) for w in workloads for n in env_counts]
    if batch_size is not None and not any(runner_named(r).batched for r in runners):
        raise ValueError(f"batch_size applies to async runners only "
                         f"({', '.join(r.name for r in RUNNER_SPECS.values() if r.batched)})")
    return run_groups(groups, repeats, seconds, warmup, progress)


def run_preset(suite: str, repeats: int = 3, seconds: float = 2.0, warmup: float | None = None,
               progress: Callable[[str], Any] | None = None, own_cluster: bool = True) -> list[dict]:
    """Runs the groups of ``SUITES[suite]``; each row also gets ``suite``.
    A suite with a ``cluster`` runs on one it starts (``cluster_of``), unless
    ``own_cluster`` is False: the caller started it."""
    try:
        spec = SUITES[suite]
    except KeyError:
        raise ValueError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}") from None
    with cluster_of(spec) if own_cluster else contextlib.nullcontext():
        rows = run_groups(spec.groups, repeats, seconds, warmup, progress)
    for r in rows:
        r["suite"] = suite
    return rows


@contextlib.contextmanager
def cluster_of(suite: Suite):
    """The local Ray cluster ``suite`` runs on, started and ended (nothing for a suite without one).

    Raises:
        RuntimeError: Ray is missing, or the cluster did not start.
    """
    if suite.cluster is None:
        yield
        return
    from ..ray.cluster import local_cluster

    with local_cluster(*suite.cluster):
        yield


def _drop_duplicate_layouts(entries: list[dict]) -> list[dict]:
    """Closes envs of a runner whose split repeats one of its earlier
    layouts' (same learner share, same worker count)."""
    kept, seen = [], set()
    for e in entries:
        if e["spec"].layouts:
            key = (e["runner"], e["num_workers"], e["learner_envs"])
            if key in seen:
                e["envs"].close()
                continue
            seen.add(key)
        kept.append(e)
    return kept


# ---------------------------------------------------------------- every peer

#: rock_vec's runners in ``peer_groups``: its step (copies and views), async batches, an oversubscribed layout.
PEER_OURS = ("rock_vec", "rock_vec_nocopy", "rock_vec_async", "rock_vec_oversub")
#: Every peer in ``peer_groups``, in the order the tables list them.
PEER_RUNNERS = ("gym_sync", "gym_async", "sb3_subproc", "sb3_dummy", "envpool_sync", "envpool_async", "pufferlib")
#: Targets of ``peer_groups`` by (workload, num_envs); every 16-env group also
#: wants the oversubscribed layout at >= 0.8x the best.
PEER_TARGETS: dict[tuple[str, int], tuple[Target, ...]] = {
    ("cartpole", 16): (Target("rock_vec", 1.9, "pufferlib"), Target("rock_vec", 1.0, "envpool_sync")),
    ("atari_like", 16): (Target("rock_vec", 1.5, "pufferlib"), Target("rock_vec_nocopy", 1.5, "pufferlib")),
    ("image_f32", 16): (Target("rock_vec", 2.0, "pufferlib"), Target("rock_vec_nocopy", 2.0, "pufferlib")),
    ("busy100", 16): (Target("rock_vec", 1.7, EVERY_PEER),),
}


def peer_groups(workloads: Sequence[str], env_counts: Sequence[int],
                layouts: Sequence[int | None] = (None,)) -> list[Group]:
    """One group per (workload, num_envs): ``PEER_OURS`` and every peer of
    ``PEER_RUNNERS`` that runs the workload (EnvPool only its own CartPole),
    async runners in batches of half the envs, ratios over gym_sync
    (``vs_peer``) and over each peer (``vs``), targets ``PEER_TARGETS``."""
    groups = []
    for w in workloads:
        wl = workload_named(w)
        for n in env_counts:
            runners = tuple(r for r in PEER_OURS + PEER_RUNNERS
                            if not (RUNNER_SPECS[r].needs_envpool_id and wl.envpool_id is None))
            versus = PEER_TARGETS.get((w, n), ())
            if n == 16:
                versus += (Target("rock_vec_oversub", 0.8, BEST_LAYOUT),)
            groups.append(Group(w, n, runners, batch_size=n // 2 if n % 2 == 0 else n, layouts=tuple(layouts),
                                peer="gym_sync", versus=versus))
    return groups


def quick_settings() -> dict:
    """What ``rock-vec bench --quick`` runs (the gym suite; with ``--suite``, its repeats and seconds)."""
    return {"workloads": ["cartpole", "atari_like"], "env_counts": [16], "repeats": 3, "seconds": 1.0,
            "layouts": [None]}
