"""The runners: every way the benchmarks vectorise a workload (``Runner``),
registered by name in ``RUNNER_SPECS``; rock_vec's own layouts among them;
whether one can run here (``unavailable``); and building one's envs
(``check_case``, ``make_envs``).

A runner is driven through one of five APIs (``Runner.api``, see
``drivers``):

- ``vector``, gymnasium's ``VectorEnv.step`` on a whole batch: ``rock_vec``
  (``rock_vec.make_vec`` with a layout: None, the default split, or an int,
  ``envs_per_worker``), ``rock_vec_nocopy``, ``rock_vec_docker``,
  ``rock_vec_oversub``, ``rock_vec_workers``; ``gym_sync``, ``gym_async``
  (gymnasium's default start method: fork on Linux), ``envpool_sync``
  (``batch_size == num_envs``, threads in the learner process), ``pufferlib``;
  on the Ray cluster the process joined (the ray suite starts one):
  ``ray_rock_vec``, ``ray_actor_per_env``, ``pufferlib_ray``;
- ``async``, EnvPool-style batches: ``async_reset()``, then ``recv()`` the
  next ``batch_size`` envs to finish and ``send()`` their actions back:
  ``rock_vec_async``, ``envpool_async``, ``ray_rock_vec_async``;
- ``sb3``, Stable-Baselines3's ``VecEnv.step``: ``sb3_rock_vec``
  (``RockVecEnv.from_id`` with a layout), ``sb3_subproc`` (SB3's default
  start method), ``sb3_dummy``;
- ``rllib``, one ``EnvRunner.sample`` of an RLlib actor: ``rllib_rock_vec``,
  ``rllib_rock_vec_direct``, ``rllib_sync`` (``rllib_runner``);
- ``overlap``, a training loop only: ``rock_vec_overlap``.

The peers' factories are in ``peers`` and RLlib's in ``rllib_runner``; the
table that names them all is here, with rock_vec's, so that one place says
what every runner is and which ones exist. Optional modules (SB3, EnvPool,
PufferLib, Ray, the docker SDK) are imported only when a runner is built or
probed, so the table imports without them.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..vector_env import make_vec
from .peers import (
    actor_per_env_envs,
    envpool_envs,
    gym_async_envs,
    gym_sync_envs,
    puffer_layouts,
    pufferlib_envs,
    pufferlib_ray_envs,
    sb3_dummy_envs,
    sb3_subproc_envs,
)
from .rllib_runner import rllib_rock_vec_direct_runner, rllib_rock_vec_runner, rllib_sync_runner, runner_learner_envs
from .workloads import WORKLOADS, Workload, workload_named

# ---------------------------------------------------------------- rock_vec's own layouts


def _rock_vec(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return make_vec(wl.env_id, num_envs, envs_per_worker=layout, **wl.kwargs)


def _rock_vec_async(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return make_vec(wl.env_id, num_envs, envs_per_worker=layout, batch_size=batch_size, **wl.kwargs)


def _rock_vec_nocopy(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return make_vec(wl.env_id, num_envs, envs_per_worker=layout, copy=False, **wl.kwargs)


_rock_vec_overlap = _rock_vec_async  # the same pool; the overlap driver steps it in halves


def _rock_vec_docker(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return make_vec(wl.env_id, num_envs, envs_per_worker=layout, backend="docker", **wl.kwargs)


def _rock_vec_workers(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """The process backend laid out as the docker backend is: every env in a worker, one per CPU."""
    return make_vec(wl.env_id, num_envs, envs_per_worker=layout, learner_envs=0, **wl.kwargs)


def _rock_vec_oversub(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """More worker processes than CPUs: ``OVERSUBSCRIBED`` x the usable CPUs (at most one per env)."""
    from ..placement.cpus import usable_cpus

    workers = min(num_envs, OVERSUBSCRIBED * usable_cpus())
    return make_vec(wl.env_id, num_envs, num_workers=workers, learner_envs=0, **wl.kwargs)


#: Worker processes per usable CPU in the ``rock_vec_oversub`` layout.
OVERSUBSCRIBED = 4


def _ray_rock_vec(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """rock_vec.ray: a pool of one CPU on each node of the Ray cluster this process joined."""
    from ..ray import make_vec as ray_make_vec

    return ray_make_vec(wl.env_id, num_envs, pools="auto", cpus_per_pool=1, batch_size=batch_size,
                        envs_per_worker=layout, **wl.kwargs)


def _sb3_rock_vec(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    from ..sb3 import RockVecEnv

    return RockVecEnv.from_id(wl.env_id, num_envs, envs_per_worker=layout, **wl.kwargs)


def docker_unavailable() -> str | None:
    """Why the docker backend cannot run here (no SDK, engine or image), or None."""
    try:
        from ..backends import docker as backend

        backend.client().images.get(backend.default_image())
    except ImportError as exc:
        return f"the docker SDK is missing ({exc})"
    except RuntimeError as exc:
        return str(exc).split(". ")[0]
    except Exception:  # noqa: BLE001 - the image is missing
        return "no worker image: run `rock-vec image build`"
    return None


# ---------------------------------------------------------------- where each runner's envs step


def _no_workers(envs, num_envs: int) -> int | None:
    return None


def _pool_workers(envs, num_envs: int) -> int | None:
    """Its own count: a rock_vec pool's, PufferLib's vectoriser's, an ``EnvRunnerActor``'s."""
    return envs.num_workers


def _one_process_per_env(envs, num_envs: int) -> int | None:
    return num_envs


def _all_in_learner(envs, num_envs: int) -> int:
    return num_envs


def _none_in_learner(envs, num_envs: int) -> int:
    return 0


def _pool_learner_envs(envs, num_envs: int) -> int:
    return envs.split.learner_envs


def _ray_pools(envs, num_envs: int) -> int:
    """rock_vec.ray's worker processes: every pool's, on every node."""
    return sum(len(p["workers"]) for p in envs.pools)


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Runner:
    """A way to vectorise a workload, and how to drive it.

    Attributes:
        name: the runner's name (a key of ``RUNNER_SPECS``).
        api: ``"vector"``, ``"async"``, ``"sb3"`` or ``"rllib"`` (its driver
            in ``drivers.DRIVERS``), or ``"overlap"`` (a training loop only:
            ``drivers.POLICY_DRIVERS``).
        build: ``build(workload, num_envs, layout, batch_size)`` -> the envs.
        description: one line for ``--help`` and the README.
        requires: a module this runner imports (None: always available).
        ours: one of rock_vec's own faces (built after the peers, which may
            fork the learner).
        layouts: accepts rock_vec layouts (``envs_per_worker``).
        batched: takes a ``batch_size`` (the ``async`` API).
        seeded: its resets take a seed (EnvPool's seed is fixed at make).
        action_dtype: the dtype its actions are cast to (None: the space's).
        needs_envpool_id: runs only workloads that name an EnvPool id.
        workers: ``workers(envs, num_envs)`` -> worker processes (None:
            none, it steps in the learner process).
        learner_envs: ``learner_envs(envs, num_envs)`` -> envs stepped in
            the learner's process (EnvPool's threads count as the learner's).
        check: ``check()`` -> why it cannot run here beyond a missing module
            (no Docker engine), or None.
        spins_after: seconds its workers keep busy-waiting after its last
            round (PufferLib's: 0.5); the next measurement starts that much
            later, so that it never shares the CPUs with them.
        own_layouts: ``own_layouts(num_envs)`` -> the layouts a peer is
            always measured in, its ratios taken over the fastest (None: the
            group's layouts if it ``layouts``, else its one).
    """

    name: str
    api: str
    build: Callable[[Workload, int, int | None, int | None], Any]
    description: str
    requires: str | None = None
    ours: bool = False
    layouts: bool = False
    batched: bool = False
    seeded: bool = True
    action_dtype: str | None = None
    needs_envpool_id: bool = False
    workers: Callable[[Any, int], int | None] = _no_workers
    learner_envs: Callable[[Any, int], int] = _all_in_learner
    check: Callable[[], str | None] | None = None
    spins_after: float = 0.0
    own_layouts: Callable[[int], tuple[int | None, ...]] | None = None


RUNNER_SPECS: dict[str, Runner] = {r.name: r for r in (
    Runner("rock_vec", "vector", _rock_vec,
           "rock_vec.make_vec: VectorEnv.step (default split: from the measured step cost, see envs.split)",
           ours=True, layouts=True, workers=_pool_workers, learner_envs=_pool_learner_envs),
    Runner("rock_vec_nocopy", "vector", _rock_vec_nocopy,
           "rock_vec.make_vec(copy=False): results are views of the pool's memory (as PufferLib's and EnvPool's are)",
           ours=True, layouts=True, workers=_pool_workers, learner_envs=_pool_learner_envs),
    Runner("gym_sync", "vector", gym_sync_envs, "gymnasium SyncVectorEnv: every env steps in the learner"),
    Runner("gym_async", "vector", gym_async_envs,
           "gymnasium AsyncVectorEnv(shared_memory=True): one process per env (fork)",
           workers=_one_process_per_env, learner_envs=_none_in_learner),
    Runner("rock_vec_async", "async", _rock_vec_async,
           "rock_vec.make_vec(batch_size=B): async_reset, then recv/send B envs at a time",
           ours=True, layouts=True, batched=True, workers=_pool_workers, learner_envs=_pool_learner_envs),
    Runner("rock_vec_overlap", "overlap", _rock_vec_overlap,
           "rock_vec.make_vec(batch_size=B): the policy runs on one batch while the others step (step_envs)",
           ours=True, layouts=True, batched=True, workers=_pool_workers, learner_envs=_pool_learner_envs),
    Runner("rock_vec_docker", "vector", _rock_vec_docker,
           "rock_vec.make_vec(backend='docker'): each worker a container, every env in one",
           requires="docker", ours=True, layouts=True, workers=_pool_workers, learner_envs=_pool_learner_envs,
           check=docker_unavailable),
    Runner("rock_vec_oversub", "vector", _rock_vec_oversub,
           f"rock_vec.make_vec(num_workers={OVERSUBSCRIBED} x CPUs, learner_envs=0): oversubscribed worker processes",
           ours=True, workers=_pool_workers, learner_envs=_pool_learner_envs),
    Runner("rock_vec_workers", "vector", _rock_vec_workers,
           "rock_vec.make_vec(learner_envs=0): worker processes only, laid out as the docker backend",
           ours=True, layouts=True, workers=_pool_workers, learner_envs=_pool_learner_envs),
    Runner("sb3_rock_vec", "sb3", _sb3_rock_vec, "rock_vec.sb3.RockVecEnv.from_id: SB3 VecEnv.step",
           requires="stable_baselines3", ours=True, layouts=True, workers=_pool_workers,
           learner_envs=_pool_learner_envs),
    Runner("sb3_subproc", "sb3", sb3_subproc_envs, "SB3 SubprocVecEnv: one process per env (SB3's start method)",
           requires="stable_baselines3", workers=_one_process_per_env, learner_envs=_none_in_learner),
    Runner("sb3_dummy", "sb3", sb3_dummy_envs, "SB3 DummyVecEnv: every env steps in the learner",
           requires="stable_baselines3"),
    Runner("envpool_async", "async", envpool_envs,
           "envpool.make(num_envs=N, batch_size=B): C++ threads, async_reset then recv/send",
           requires="envpool", batched=True, seeded=False, action_dtype="int32", needs_envpool_id=True),
    Runner("envpool_sync", "vector", envpool_envs, "envpool.make(num_envs=N): C++ threads, step on the whole batch",
           requires="envpool", seeded=False, action_dtype="int32", needs_envpool_id=True),
    Runner("pufferlib", "vector", pufferlib_envs,
           "pufferlib.vector.make(backend=Multiprocessing, batch_size=N): a worker per CPU (and every env in one)",
           requires="pufferlib.vector", layouts=True, action_dtype="int32", workers=_pool_workers,
           learner_envs=_none_in_learner, spins_after=0.6, own_layouts=puffer_layouts),
    Runner("ray_rock_vec", "vector", _ray_rock_vec,
           "rock_vec.ray.make_vec(pools='auto', cpus_per_pool=1): a pool of one CPU on each Ray node, a call per "
           "pool per step", requires="ray", ours=True, workers=_ray_pools, learner_envs=_none_in_learner),
    Runner("ray_rock_vec_async", "async", _ray_rock_vec,
           "rock_vec.ray.make_vec(..., batch_size=B): send/recv of whole pools, the first to finish",
           requires="ray", ours=True, batched=True, workers=_ray_pools, learner_envs=_none_in_learner),
    Runner("ray_actor_per_env", "vector", actor_per_env_envs,
           "one Ray actor per env (Tianshou's RayVectorEnv, SB3's Ray VecEnv proposal): a call per env per step",
           requires="ray", workers=_one_process_per_env, learner_envs=_none_in_learner),
    Runner("pufferlib_ray", "vector", pufferlib_ray_envs,
           "pufferlib.vector.make(backend=Ray): a Serial actor per cluster CPU, send and recv calls per worker",
           requires="pufferlib.vector", action_dtype="int32", workers=_pool_workers, learner_envs=_none_in_learner,
           check=lambda: import_error("ray")),
    Runner("rllib_rock_vec", "rllib", rllib_rock_vec_runner,
           "RLlib's SingleAgentEnvRunner (a Ray actor, 2 CPUs) sampling a rock_vec pool (rock_vec.ray)",
           requires="ray.rllib", ours=True, workers=_pool_workers, learner_envs=runner_learner_envs),
    Runner("rllib_rock_vec_direct", "rllib", rllib_rock_vec_direct_runner,
           "RLlib's SingleAgentEnvRunner (a Ray actor, 2 CPUs) sampling rock_vec.make_vec, registered with "
           "ray.tune's register_env", requires="ray.rllib", ours=True, workers=_pool_workers,
           learner_envs=runner_learner_envs),
    Runner("rllib_sync", "rllib", rllib_sync_runner,
           "RLlib's SingleAgentEnvRunner (a Ray actor, 2 CPUs) sampling its default gymnasium SyncVectorEnv",
           requires="ray.rllib"),
)}

#: Layouts a sweep tries: the default, then envs_per_worker values (each
#: capped at num_envs by ``layouts_for``).
SWEEP_LAYOUTS = (None, 1, 2, 4, 8, 16, 32)


def runner_named(runner: str | Runner) -> Runner:
    if isinstance(runner, Runner):
        return runner
    try:
        return RUNNER_SPECS[runner]
    except KeyError:
        raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNER_SPECS)}") from None


# ---------------------------------------------------------------- availability


@functools.lru_cache(maxsize=None)
def import_error(module: str) -> str | None:
    """Why ``module`` does not import here, or None (tried once per process:
    the suites ask about every runner several times)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing and (module == missing or module.startswith(missing + ".")):
            return f"{missing} is not installed"
        return f"{module} does not import: {exc}"
    except Exception as exc:  # a broken install: report it, never crash the suite
        return f"{module} does not import: {type(exc).__name__}: {exc}"
    return None


def unavailable(runner: str | Runner) -> str | None:
    """Why ``runner`` cannot run here (its optional module does not import), or None."""
    spec = runner_named(runner)
    why = None if spec.requires is None else import_error(spec.requires)
    return why or (spec.check() if spec.check is not None else None)


# ---------------------------------------------------------------- building a runner's envs


def layout_label(layout: int | None) -> str:
    return "default" if layout is None else f"epw={layout}"


def layouts_for(layouts: Iterable[int | None], num_envs: int) -> list[int | None]:
    """The layouts that apply to ``num_envs`` envs: None (the default split)
    and each envs_per_worker value <= num_envs that gives a new number of
    workers (a built layout that repeats another's split is dropped later)."""
    layouts = list(layouts)
    out: list[int | None] = []
    seen_workers: set[int] = set()
    if None in layouts:
        out.append(None)
    for layout in layouts:
        if layout is None:
            continue
        workers = -(-num_envs // layout)
        if layout <= num_envs and workers not in seen_workers:
            seen_workers.add(workers)
            out.append(layout)
    return out


def check_case(runner: str | Runner, workload: str | Workload, num_envs: int, layout: int | None = None,
               batch_size: int | None = None) -> None:
    """Raises ValueError if ``runner`` cannot run this case (whatever is installed)."""
    spec, wl = runner_named(runner), workload_named(workload)
    if layout is not None and not spec.layouts:
        raise ValueError(f"layout applies to the runners with worker layouts "
                         f"({', '.join(r.name for r in RUNNER_SPECS.values() if r.layouts)}), not {spec.name}")
    if spec.batched:
        if batch_size is None:
            raise ValueError(f"{spec.name} needs a batch_size")
        if not 0 < batch_size <= num_envs or num_envs % batch_size:
            raise ValueError(f"{spec.name}: batch_size must divide num_envs, got batch_size={batch_size} "
                             f"for {num_envs} envs")
    elif batch_size is not None:
        raise ValueError(f"batch_size applies to async runners only, not {spec.name}")
    if spec.needs_envpool_id and wl.envpool_id is None:
        raise ValueError(f"{spec.name}: EnvPool has no version of workload {wl.name!r} "
                         f"(workloads with one: {', '.join(w.name for w in WORKLOADS.values() if w.envpool_id)})")


def make_envs(runner: str | Runner, workload: str | Workload, num_envs: int, layout: int | None = None,
              batch_size: int | None = None):
    """Builds ``runner``'s vectorised ``num_envs`` copies of ``workload``.

    Args:
        runner: a name in ``RUNNER_SPECS`` (or a ``Runner``).
        workload: a name in ``WORKLOADS`` or a ``Workload``.
        num_envs: number of sub-environments.
        layout: runners with ``layouts`` only: ``None`` (default layout) or
            envs_per_worker.
        batch_size: batched (async) runners only, and required there: the
            envs per ``recv``; it must divide ``num_envs``.

    Raises:
        ValueError: see ``check_case``.
        ImportError: the runner's optional module is missing.
    """
    spec, wl = runner_named(runner), workload_named(workload)
    check_case(spec, wl, num_envs, layout, batch_size)
    return spec.build(wl, num_envs, layout, batch_size)
