"""Throughput workloads and runners, shared by ``rock-vec bench`` and bench/.

A *workload* is an env and its kwargs; a *runner* is a way to vectorise it,
driven through one of three APIs (``Runner.api``), each with its own small
driver (``DRIVERS``):

- ``vector``, gymnasium's ``VectorEnv.step`` on a whole batch:

  - ``rock_vec``: ``rock_vec.make_vec`` with a layout (``None``: the
    default layout; an int: ``envs_per_worker``);
  - ``gym_sync``: ``gymnasium.vector.SyncVectorEnv``;
  - ``gym_async``: ``gymnasium.vector.AsyncVectorEnv(shared_memory=True)``
    (gymnasium's default start method: fork on Linux);
  - ``envpool_sync``: ``envpool.make(id, env_type="gymnasium", num_envs=n)``
    (``batch_size == num_envs``), threads in the learner process;

- ``async``, EnvPool-style batches: ``async_reset()``, then ``recv()`` the
  next ``batch_size`` envs to finish and ``send()`` their actions back:

  - ``rock_vec_async``: ``rock_vec.make_vec(id, n, batch_size=B)``;
  - ``envpool_async``: ``envpool.make(id, env_type="gymnasium", num_envs=n,
    batch_size=B)``;

- ``sb3``, Stable-Baselines3's ``VecEnv.step``:

  - ``sb3_rock_vec``: ``rock_vec.sb3.RockVecEnv.from_id`` (with a layout);
  - ``sb3_subproc``: SB3's ``SubprocVecEnv`` (its default start method);
  - ``sb3_dummy``: SB3's ``DummyVecEnv``.

Every runner keeps its defaults otherwise (results are fresh arrays), and
every env but EnvPool's is built with ``gymnasium.make``, so all carry the
same wrappers. EnvPool and SB3 are optional: ``unavailable(runner)`` says why
a runner cannot run here, and the suites skip such runners.

One measurement counts *env steps*: a ``vector`` or ``sb3`` round steps
``num_envs`` envs, an ``async`` round receives ``batch_size`` rows.

    from rock_vec.bench import run_suite, run_preset
    rows = run_suite(["cartpole"], [16], repeats=3, seconds=1.0)
    rows = run_preset("async", repeats=3, seconds=1.0)   # see SUITES
"""

from __future__ import annotations

import functools
import importlib
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import gymnasium as gym
import numpy as np

from ..atari import PIPELINE_MAKE_ID
from ..synthetic import SYNTHETIC_MAKE_ID
from ..vector_env import make_vec


@dataclass(frozen=True)
class Workload:
    """An env id, its kwargs, and what it stands for."""

    name: str
    env_id: str
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    #: EnvPool's id of the same env (None: EnvPool has none).
    envpool_id: str | None = None
    #: Modules the env needs (a group on it is skipped, with a note, without them).
    requires: tuple[str, ...] = ()


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("cartpole", "CartPole-v1", {},
             "CartPole-v1: 4 float32 obs, a step of a few microseconds; measures per-step overhead",
             envpool_id="CartPole-v1"),
    Workload("atari_like", SYNTHETIC_MAKE_ID, {"obs_shape": (84, 84, 4), "obs_dtype": "uint8"},
             "uint8 (84, 84, 4) frames (28 KiB), no step cost; measures moving Atari-sized observations"),
    Workload("image_f32", SYNTHETIC_MAKE_ID, {"obs_shape": (3, 224, 224), "obs_dtype": "float32"},
             "float32 (3, 224, 224) images (588 KiB), no step cost; measures bandwidth"),
    Workload("busy100", SYNTHETIC_MAKE_ID, {"obs_shape": (4,), "obs_dtype": "float32", "step_us": 100},
             "4 float32 obs, 100 us of busy CPU per step; measures parallel speed-up"),
    Workload("jitter", SYNTHETIC_MAKE_ID, {"obs_shape": (4,), "obs_dtype": "float32", "step_us": 105,
                                            "jitter_us": 95},
             "4 float32 obs, busy CPU drawn uniformly in 10..200 us per step; measures waiting on stragglers"),
    Workload("cnn_step", SYNTHETIC_MAKE_ID, {"obs_shape": (84, 84, 4), "obs_dtype": "uint8", "step_us": 300},
             "uint8 (84, 84, 4) frames, 300 us of busy CPU per step: about what a Nature CNN forward costs "
             "per env here, for the overlap loop"),
    Workload("breakout", PIPELINE_MAKE_ID, {"game": "Breakout"},
             "ALE Breakout through AtariPreprocessing (frame skip 4, 84x84 grey) and FrameStackObservation(4): "
             "the pipeline users train on (needs ale-py and opencv)", requires=("ale_py", "cv2")),
)}


#: The gym suite's workloads by default (the others belong to the train and atari suites).
GYM_WORKLOADS = ("cartpole", "atari_like", "image_f32", "busy100", "jitter")


# ---------------------------------------------------------------- runners


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


#: Pool sizes the docker suite times the start of (one container per env).
STARTUP_SIZES = (16, 64)


def container_startup(num_envs: int) -> float:
    """Seconds until a docker pool of ``num_envs`` CartPoles, one container
    each, is ready (every worker has built its env); the pool is closed."""
    start = time.perf_counter()
    envs = make_vec("CartPole-v1", num_envs, envs_per_worker=1, backend="docker")
    took = time.perf_counter() - start
    envs.close()
    return took


def _env_fns(wl: Workload, num_envs: int) -> list[Callable[[], gym.Env]]:
    return [functools.partial(gym.make, wl.env_id, **wl.kwargs) for _ in range(num_envs)]


def _gym_sync(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return gym.vector.SyncVectorEnv(_env_fns(wl, num_envs))


def _gym_async(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return gym.vector.AsyncVectorEnv(_env_fns(wl, num_envs), shared_memory=True)


def _sb3_rock_vec(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    from ..sb3 import RockVecEnv

    return RockVecEnv.from_id(wl.env_id, num_envs, envs_per_worker=layout, **wl.kwargs)


def _sb3_subproc(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    from stable_baselines3.common.vec_env import SubprocVecEnv

    return SubprocVecEnv(_env_fns(wl, num_envs))


def _sb3_dummy(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv(_env_fns(wl, num_envs))


def _rock_vec_oversub(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """More worker processes than CPUs: ``OVERSUBSCRIBED`` x the usable CPUs (at most one per env)."""
    from ..placement.cpus import usable_cpus

    workers = min(num_envs, OVERSUBSCRIBED * usable_cpus())
    return make_vec(wl.env_id, num_envs, num_workers=workers, learner_envs=0, **wl.kwargs)


#: Worker processes per usable CPU in the ``rock_vec_oversub`` layout.
OVERSUBSCRIBED = 4


def _puffer_env(wl: Workload, buf=None):
    """One env as PufferLib wraps a gymnasium env, writing into its shared ``buf``."""
    import pufferlib.emulation

    return pufferlib.emulation.GymnasiumPufferEnv(env_creator=functools.partial(gym.make, wl.env_id, **wl.kwargs),
                                                  buf=buf)


def puffer_workers(num_envs: int) -> int:
    """PufferLib's own layout: one worker process per core (the most that divide num_envs)."""
    from ..placement.cpus import usable_cpus

    return max(w for w in range(1, min(num_envs, usable_cpus()) + 1) if num_envs % w == 0)


def puffer_layouts(num_envs: int) -> tuple[int | None, ...]:
    """The layouts PufferLib is measured in: its own (None: ``puffer_workers``),
    and every env in one worker, which is faster where the learner's busy
    wait in ``recv`` would take a worker's CPU."""
    return (None,) if puffer_workers(num_envs) == 1 else (None, num_envs)


def _pufferlib(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """PufferLib's Multiprocessing vectoriser on the whole batch (``batch_size == num_envs``)."""
    import pufferlib.vector

    workers = puffer_workers(num_envs) if layout is None else num_envs // layout
    return pufferlib.vector.make(functools.partial(_puffer_env, wl), backend=pufferlib.vector.Multiprocessing,
                                 num_envs=num_envs, num_workers=workers, batch_size=num_envs)


def _envpool(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    import envpool

    with warnings.catch_warnings():
        # EnvPool builds float64 Box bounds for float32 observations: gymnasium's warning, harmless here.
        warnings.filterwarnings("ignore", message=".*precision lowered by casting", category=UserWarning)
        envs = envpool.make(wl.envpool_id, env_type="gymnasium", num_envs=num_envs,
                            batch_size=num_envs if batch_size is None else batch_size, seed=0)
        _ = (envs.observation_space, envs.action_space)  # built (and cached) here, under this filter
    return envs


#: CPUs of each RLlib EnvRunner actor (``num_cpus_per_env_runner``).
RLLIB_RUNNER_CPUS = 2
#: Env steps one ``rllib`` round samples, per env.
RLLIB_STEPS_PER_ENV = 128


class EnvRunnerActor:
    """One of RLlib's SingleAgentEnvRunners as a Ray actor of
    ``RLLIB_RUNNER_CPUS`` CPUs (as ``num_cpus_per_env_runner`` gives it),
    sampling ``num_envs`` envs with PPO's default policy, vectorised by a
    rock_vec pool (``rock_vec.ray``) or by RLlib's default (``"sync"``).

    Ray is started here if it is not yet (logical CPUs for three such
    actors: a group builds all of its runners, then measures them in turn,
    never together)."""

    def __init__(self, wl: Workload, num_envs: int, rock_vec_pool: str | None):
        import ray
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

        if not ray.is_initialized():
            ray.init(num_cpus=3 * RLLIB_RUNNER_CPUS, include_dashboard=False, log_to_driver=False)
        if rock_vec_pool == "register":
            from .. import ray as rock_vec_ray

            env, mode = rock_vec_ray.register(f"rock_vec:{wl.env_id}", wl.env_id), "vector_entry_point"
        elif rock_vec_pool == "direct":
            from ray.tune.registry import register_env

            env, mode = f"rock_vec-direct:{wl.env_id}", "vector_entry_point"
            register_env(env, DirectPool(wl.env_id))
        else:
            env, mode = wl.env_id, "sync"
        config = (PPOConfig().environment(env, env_config=dict(wl.kwargs))
                  .env_runners(num_envs_per_env_runner=num_envs, num_cpus_per_env_runner=RLLIB_RUNNER_CPUS,
                               gym_env_vectorize_mode=mode))
        self.actor = ray.remote(num_cpus=RLLIB_RUNNER_CPUS)(SingleAgentEnvRunner).remote(config=config)
        self.num_envs = num_envs
        split = ray.get(self.actor.apply.remote(lambda runner: getattr(runner.env.unwrapped, "split", None)))
        self.num_workers = split.num_workers if split else None
        self.learner_envs = split.learner_envs if split else num_envs

    def sample(self, steps: int) -> None:
        """Samples ``steps`` env steps (RLlib stops between ``steps`` and
        ``steps + num_envs - 1``); the episodes stay in the actor."""
        import ray

        ray.get(self.actor.apply.remote(lambda runner: len(runner.sample(num_timesteps=steps))))

    def close(self) -> None:
        import ray

        ray.get(self.actor.stop.remote())
        ray.kill(self.actor)


class DirectPool:
    """An env creator as a user writes one for ``register_env`` without
    ``rock_vec.ray``: ``rock_vec.make_vec`` when RLlib asks for ``num_envs``
    envs (``gym_env_vectorize_mode="vector_entry_point"``), else one env;
    the pool sized to the machine, the actor's torch left as Ray set it."""

    def __init__(self, env_id: str):
        self.env_id = env_id

    def __call__(self, env_config: dict):
        config = dict(env_config)
        num_envs = config.pop("num_envs", None)
        if num_envs is None:
            return gym.make(self.env_id, **config)
        from ..vector_env import make_vec

        return make_vec(self.env_id, num_envs=num_envs, **config)


def _rllib_rock_vec(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return EnvRunnerActor(wl, num_envs, rock_vec_pool="register")


def _rllib_rock_vec_direct(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return EnvRunnerActor(wl, num_envs, rock_vec_pool="direct")


def _rllib_sync(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return EnvRunnerActor(wl, num_envs, rock_vec_pool=None)


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


def _runner_learner_envs(envs: EnvRunnerActor, num_envs: int) -> int:
    return envs.learner_envs


@dataclass(frozen=True)
class Runner:
    """A way to vectorise a workload, and how to drive it.

    Attributes:
        name: the runner's name (a key of ``RUNNER_SPECS``).
        api: ``"vector"``, ``"async"`` or ``"sb3"``: the driver in ``DRIVERS``.
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
    Runner("gym_sync", "vector", _gym_sync, "gymnasium SyncVectorEnv: every env steps in the learner"),
    Runner("gym_async", "vector", _gym_async,
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
    Runner("sb3_subproc", "sb3", _sb3_subproc, "SB3 SubprocVecEnv: one process per env (SB3's start method)",
           requires="stable_baselines3", workers=_one_process_per_env, learner_envs=_none_in_learner),
    Runner("sb3_dummy", "sb3", _sb3_dummy, "SB3 DummyVecEnv: every env steps in the learner",
           requires="stable_baselines3"),
    Runner("envpool_async", "async", _envpool,
           "envpool.make(num_envs=N, batch_size=B): C++ threads, async_reset then recv/send",
           requires="envpool", batched=True, seeded=False, action_dtype="int32", needs_envpool_id=True),
    Runner("envpool_sync", "vector", _envpool, "envpool.make(num_envs=N): C++ threads, step on the whole batch",
           requires="envpool", seeded=False, action_dtype="int32", needs_envpool_id=True),
    Runner("pufferlib", "vector", _pufferlib,
           "pufferlib.vector.make(backend=Multiprocessing, batch_size=N): a worker per CPU (and every env in one)",
           requires="pufferlib.vector", layouts=True, action_dtype="int32", workers=_pool_workers,
           learner_envs=_none_in_learner, spins_after=0.6, own_layouts=puffer_layouts),
    Runner("rllib_rock_vec", "rllib", _rllib_rock_vec,
           "RLlib's SingleAgentEnvRunner (a Ray actor, 2 CPUs) sampling a rock_vec pool (rock_vec.ray)",
           requires="ray.rllib", ours=True, workers=_pool_workers, learner_envs=_runner_learner_envs),
    Runner("rllib_rock_vec_direct", "rllib", _rllib_rock_vec_direct,
           "RLlib's SingleAgentEnvRunner (a Ray actor, 2 CPUs) sampling rock_vec.make_vec, registered with "
           "ray.tune's register_env", requires="ray.rllib", ours=True, workers=_pool_workers,
           learner_envs=_runner_learner_envs),
    Runner("rllib_sync", "rllib", _rllib_sync,
           "RLlib's SingleAgentEnvRunner (a Ray actor, 2 CPUs) sampling its default gymnasium SyncVectorEnv",
           requires="ray.rllib"),
)}

#: The runners of the default (``gym``) suite.
RUNNERS = ("rock_vec", "gym_sync", "gym_async")
#: Every row gets ``vs_<peer>`` for these (None where the peer did not run).
PEERS = ("gym_sync", "gym_async")
#: Layouts a sweep tries: the default, then envs_per_worker values (each
#: capped at num_envs by ``layouts_for``).
SWEEP_LAYOUTS = (None, 1, 2, 4, 8, 16, 32)


def _runner(runner: str | Runner) -> Runner:
    if isinstance(runner, Runner):
        return runner
    try:
        return RUNNER_SPECS[runner]
    except KeyError:
        raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNER_SPECS)}") from None


@functools.lru_cache(maxsize=None)
def _import_error(module: str) -> str | None:
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
    spec = _runner(runner)
    why = None if spec.requires is None else _import_error(spec.requires)
    return why or (spec.check() if spec.check is not None else None)


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


def _workload(workload: str | Workload) -> Workload:
    if isinstance(workload, Workload):
        return workload
    try:
        return WORKLOADS[workload]
    except KeyError:
        raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}") from None


def check_case(runner: str | Runner, workload: str | Workload, num_envs: int, layout: int | None = None,
               batch_size: int | None = None) -> None:
    """Raises ValueError if ``runner`` cannot run this case (whatever is installed)."""
    spec, wl = _runner(runner), _workload(workload)
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
    spec, wl = _runner(runner), _workload(workload)
    check_case(spec, wl, num_envs, layout, batch_size)
    return spec.build(wl, num_envs, layout, batch_size)


# ---------------------------------------------------------------- drivers


def sample_actions(space: gym.Space, rows: int, count: int = 16, seed: int = 0, dtype: str | None = None) -> np.ndarray:
    """``count`` batches of ``rows`` valid actions of the single-env
    ``space``, stacked: shape (count, rows, ...)."""
    space.seed(seed)
    out = np.stack([np.stack([np.asarray(space.sample()) for _ in range(rows)]) for _ in range(count)])
    return out if dtype is None else out.astype(dtype)


@dataclass
class Drive:
    """A started runner: call ``round(actions[i])`` again and again, then ``finish()``.

    Attributes:
        round: one round of the runner's API, given one batch of actions.
        actions: (count, rows, ...) valid action batches to cycle through
            (count is a power of two).
        rows: env steps one round makes.
        finish: leaves nothing running (the envs can be reset or closed).
    """

    round: Callable[[np.ndarray], Any]
    actions: np.ndarray
    rows: int
    finish: Callable[[], None] = lambda: None


def _drive_vector(envs, num_envs: int, batch_size: int | None, seed: int | None, dtype: str | None) -> Drive:
    """gymnasium's VectorEnv (and EnvPool's sync mode): ``step`` on every env."""
    if seed is None:
        envs.reset()
    else:
        envs.reset(seed=seed)
    actions = sample_actions(envs.single_action_space, num_envs, seed=seed or 0, dtype=dtype)
    return Drive(envs.step, actions, num_envs)


def _drive_async(envs, num_envs: int, batch_size: int | None, seed: int | None, dtype: str | None) -> Drive:
    """EnvPool-style batches: ``recv`` the next ``batch_size`` envs, ``send``
    their actions. Every env is in flight between rounds; ``finish`` receives
    them all."""
    if batch_size is None or num_envs % batch_size:
        raise ValueError(f"the async API needs a batch_size that divides num_envs={num_envs}, got {batch_size!r}")
    if seed is None:
        envs.async_reset()
    else:
        envs.async_reset(seed=seed)
    recv, send = envs.recv, envs.send

    def round_(actions: np.ndarray) -> None:
        send(actions, recv()[4]["env_id"])

    def finish() -> None:
        for _ in range(num_envs // batch_size):
            recv()

    actions = sample_actions(envs.single_action_space, batch_size, seed=seed or 0, dtype=dtype)
    return Drive(round_, actions, batch_size, finish)


def _drive_sb3(envs, num_envs: int, batch_size: int | None, seed: int | None, dtype: str | None) -> Drive:
    """Stable-Baselines3's VecEnv: ``step`` (step_async + step_wait) on every env."""
    if seed is not None:
        envs.seed(seed)
    envs.reset()
    actions = sample_actions(envs.action_space, num_envs, seed=seed or 0, dtype=dtype)
    return Drive(envs.step, actions, num_envs)


def _drive_policy_vector(envs, num_envs: int, batch_size: int | None, seed: int | None, policy) -> Drive:
    """A training loop on a VectorEnv: ``step(policy(obs))``, the policy's
    forward and the envs' step taking turns."""
    obs, _ = envs.reset() if seed is None else envs.reset(seed=seed)
    last = [obs]

    def round_(_actions) -> None:
        last[0] = envs.step(policy(last[0]))[0]

    return Drive(round_, np.zeros((1, num_envs), np.int64), num_envs)


def _drive_policy_overlap(envs, num_envs: int, batch_size: int | None, seed: int | None, policy) -> Drive:
    """The overlapped training loop (README "The learner never waits"):
    each round computes the actions of one batch and hands them over with
    ``step_envs``, which returns the next batch to finish, stepped while
    the policy ran."""
    if batch_size is None or num_envs % batch_size:
        raise ValueError(f"the overlap loop needs a batch_size that divides num_envs={num_envs}, got {batch_size!r}")
    envs.async_reset() if seed is None else envs.async_reset(seed=seed)
    last = [envs.recv()]

    def round_(_actions) -> None:
        obs, *_, info = last[0]
        last[0] = envs.step_envs(policy(obs), info["env_id"])

    def finish() -> None:
        for _ in range(num_envs // batch_size - 1):
            envs.recv()

    return Drive(round_, np.zeros((1, batch_size), np.int64), batch_size, finish)


def _drive_rllib(envs: EnvRunnerActor, num_envs: int, batch_size: int | None, seed: int | None,
                 dtype: str | None) -> Drive:
    """RLlib's sampling loop: each round is one ``EnvRunner.sample`` of
    ``RLLIB_STEPS_PER_ENV`` steps per env, its own policy choosing the
    actions (the batch given is unused), its episodes kept in the actor.
    A round counts the steps asked for: RLlib may sample up to num_envs - 1
    more (< 0.8% at 16 envs, alike for every runner)."""
    steps = num_envs * RLLIB_STEPS_PER_ENV
    return Drive(lambda _actions: envs.sample(steps), np.zeros((1, num_envs)), steps)


DRIVERS: dict[str, Callable[..., Drive]] = {"vector": _drive_vector, "async": _drive_async, "sb3": _drive_sb3,
                                            "rllib": _drive_rllib}
#: Drivers of a training loop with a policy, by API.
POLICY_DRIVERS: dict[str, Callable[..., Drive]] = {"vector": _drive_policy_vector, "overlap": _drive_policy_overlap}


def start(runner: str | Runner, envs, num_envs: int, batch_size: int | None = None, seed: int = 0,
          policy=None) -> Drive:
    """Resets ``envs`` (built by ``make_envs``) the way ``runner``'s API does
    and returns its ``Drive``; with ``policy`` (``rock_vec.policies``) each
    round runs it on the observations first, as a training loop does."""
    spec = _runner(runner)
    seed = seed if spec.seeded else None
    if policy is not None:
        if spec.api not in POLICY_DRIVERS:
            raise ValueError(f"{spec.name} has no training loop (api {spec.api!r})")
        return POLICY_DRIVERS[spec.api](envs, num_envs, batch_size, seed, policy)
    if spec.api == "overlap":
        raise ValueError(f"{spec.name} runs a policy: give the group one")
    return DRIVERS[spec.api](envs, num_envs, batch_size, seed, spec.action_dtype)


def _timed(round_: Callable[[np.ndarray], Any], actions: np.ndarray, seconds: float, warmup: float) -> tuple[int, float]:
    """Rounds run in ``seconds`` of wall time after ``warmup`` seconds, and the exact time taken."""
    mask = len(actions) - 1  # len is a power of two
    clock = time.perf_counter
    end = clock() + warmup
    i = 0
    while clock() < end:
        round_(actions[i & mask])
        i += 1
    rounds = 0
    start = clock()
    end = start + seconds
    while True:
        round_(actions[rounds & mask])
        rounds += 1
        now = clock()
        if now >= end:
            break
    return rounds, now - start


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
    rounds, elapsed = _timed(drive.round, drive.actions, seconds, warmup)
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


# ---------------------------------------------------------------- suites


#: ``Target.over``: the row's least ratio over each peer (every runner of the group not ours).
EVERY_PEER = "every peer"
#: ``Target.over``: over the fastest of rock_vec's own ``VectorEnv.step`` rows of the group.
BEST_LAYOUT = "the best layout"


@dataclass(frozen=True)
class Target:
    """The least ratio ``runner``'s steps/s should reach over ``over``: a
    runner of the group (its fastest layout), ``EVERY_PEER`` or ``BEST_LAYOUT``."""

    runner: str
    least: float
    over: str


@dataclass(frozen=True)
class Group:
    """Runners measured side by side, interleaved, on one workload and size.

    Attributes:
        workload, num_envs: what every runner vectorises.
        runners: in the order rows are reported.
        batch_size: for the batched (async) runners.
        layouts: rock_vec layouts for runners that take them (see ``layouts_for``).
        peer: each row's ``vs_peer`` is its steps/s over this runner's.
        targets: {runner: the least ``vs_peer`` it should reach}.
        versus: targets over other runners than the peer (``Target``).
        policy: a ``rock_vec.policies`` name: each step runs it first (a
            training loop), the same one for every runner of the group.
    """

    workload: str
    num_envs: int
    runners: tuple[str, ...]
    batch_size: int | None = None
    layouts: tuple[int | None, ...] = (None,)
    peer: str | None = None
    targets: dict = field(default_factory=dict)
    versus: tuple[Target, ...] = ()
    policy: str | None = None

    def label(self) -> str:
        return (f"{self.workload} x{self.num_envs}" + (f" batch {self.batch_size}" if self.batch_size else "")
                + (f" +{self.policy} policy" if self.policy else ""))


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    groups: tuple[Group, ...]


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
    Suite("atari", "ALE Breakout through AtariPreprocessing and FrameStackObservation(4) x16, random actions: "
                   "rock_vec's step vs SyncVectorEnv (target >= 1.8x); async batches of 8 for reference",
          (Group("breakout", 16, ("rock_vec", "rock_vec_async", "gym_sync"), batch_size=8, peer="gym_sync",
                 targets={"rock_vec": 1.8}),)),
)}


def _cases(group: Group) -> list[tuple[Runner, int | None]]:
    """(runner, layout) pairs of ``group`` that can run here, peers first
    (gym_async forks the learner: best before rock_vec pools exist)."""
    cases = []
    for name in group.runners:
        spec = _runner(name)
        if unavailable(spec):
            continue
        if spec.own_layouts is not None:
            layouts = list(spec.own_layouts(group.num_envs))
        else:
            layouts = layouts_for(group.layouts, group.num_envs) if spec.layouts else [None]
        for layout in layouts:
            cases.append((spec, layout))
    return sorted(cases, key=lambda c: c[0].ours)


def _check_group(group: Group) -> None:
    _workload(group.workload)
    for name in group.runners:
        spec = _runner(name)
        check_case(spec, group.workload, group.num_envs, None, group.batch_size if spec.batched else None)
    overs = [t.over for t in group.versus if t.over not in (EVERY_PEER, BEST_LAYOUT)]
    for name in (group.peer, *group.targets, *(t.runner for t in group.versus), *overs):
        if name is not None and name not in group.runners:
            raise ValueError(f"{name} is a peer or target of group {group.label()} but not one of its runners")


def run_groups(groups: Sequence[Group], repeats: int = 3, seconds: float = 2.0, warmup: float | None = None,
               progress: Callable[[str], Any] | None = None) -> list[dict]:
    """Measures every runner of every group ``repeats`` times.

    For each group every runner (and layout) is built once; then each repeat
    measures all of them in turn (the order rotates per repeat), so slow
    drifts of a noisy machine spread over all runners. Runners whose
    optional module is missing are skipped (see ``unavailable``); ``progress``
    gets a line saying so.

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
        and for runners with layouts ``best`` (True on the fastest layout of
        that runner in its group).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    for group in groups:
        _check_group(group)
    if progress:
        for name in dict.fromkeys(r for g in groups for r in g.runners):
            if unavailable(name):
                progress(f"skipping {name}: {unavailable(name)}")
    total = repeats * sum(len(_cases(g)) for g in groups)
    done = 0
    rows: list[dict] = []
    for group in groups:
        w, n = group.workload, group.num_envs
        entries: list[dict] = []  # one per vectorised envs to measure
        if group_unavailable(group):
            if progress:
                progress(f"skipping {group_unavailable(group)}")
            total -= repeats * len(_cases(group))
            continue
        policy = _group_policy(group)
        try:
            for spec, layout in _cases(group):
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
        rows.extend(_summarise(group, entries))
    return rows


def group_unavailable(group: Group) -> str | None:
    """Why ``group`` cannot run here (its env's or its policy's module does
    not import), or None."""
    needs = list(_workload(group.workload).requires) + (["torch"] if group.policy else [])
    for module in needs:
        why = _import_error(module)
        if why:
            return f"{group.label()}: {why}"
    return None


def _group_policy(group: Group):
    """The group's policy, built once for all its runners (None without one)."""
    if group.policy is None:
        return None
    from . import policies

    probe = gym.make(_workload(group.workload).env_id, **_workload(group.workload).kwargs)
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
        spec = _runner(name)
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
            filtered per num_envs by ``layouts_for``. Default: ``[None]``;
            ``SWEEP_LAYOUTS`` sweeps.
        runners: names in ``RUNNER_SPECS``; rows come in that table's order
            (rock_vec first). Missing optional ones are skipped.
        warmup: seconds of warm-up per measurement (see ``measure``).
        progress: called with a line of text after each measurement.
        batch_size: for async runners (required if any is given).

    Returns:
        See ``run_groups``; ``peer``, ``vs_peer`` and ``target`` are None.
    """
    for w in workloads:
        _workload(w)
    order = list(RUNNER_SPECS)
    runners = sorted(dict.fromkeys(_runner(r).name for r in runners), key=order.index)
    layouts = (None,) if layouts is None else tuple(layouts)
    groups = [Group(w, n, tuple(runners), batch_size if any(_runner(r).batched for r in runners) else None,
                    layouts) for w in workloads for n in env_counts]
    if batch_size is not None and not any(_runner(r).batched for r in runners):
        raise ValueError(f"batch_size applies to async runners only "
                         f"({', '.join(r.name for r in RUNNER_SPECS.values() if r.batched)})")
    return run_groups(groups, repeats, seconds, warmup, progress)


def run_preset(suite: str, repeats: int = 3, seconds: float = 2.0, warmup: float | None = None,
               progress: Callable[[str], Any] | None = None) -> list[dict]:
    """Runs the groups of ``SUITES[suite]``; each row also gets ``suite``."""
    try:
        spec = SUITES[suite]
    except KeyError:
        raise ValueError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}") from None
    rows = run_groups(spec.groups, repeats, seconds, warmup, progress)
    for r in rows:
        r["suite"] = suite
    return rows


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


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _summarise(group: Group, entries: list[dict]) -> list[dict]:
    rows = []
    for e in sorted(entries, key=lambda e: group.runners.index(e["runner"])):
        rows.append({
            "group": group.label(), "workload": group.workload, "num_envs": group.num_envs, "runner": e["runner"],
            "api": e["spec"].api, "batch_size": e["batch_size"],
            "layout": layout_label(e["layout"]) if e["spec"].layouts else None,
            "num_workers": e["num_workers"], "learner_envs": e["learner_envs"],
            "steps_per_s": statistics.median(e["samples"]), "samples": e["samples"],
        })
    # A runner measured in several layouts counts, as a peer, with its fastest.
    fastest: dict[str, dict] = {}
    for r in rows:
        if r["runner"] not in fastest or r["steps_per_s"] > fastest[r["runner"]]["steps_per_s"]:
            fastest[r["runner"]] = r
    speed = {name: r["steps_per_s"] for name, r in fastest.items()}
    peers = [name for name in speed if not _runner(name).ours]
    ours_best = max((r["steps_per_s"] for r in rows if r["runner"] in ("rock_vec", "rock_vec_oversub")),
                    default=None)
    for r in rows:
        for p in PEERS:
            r[f"vs_{p}"] = _ratio(r["steps_per_s"], speed.get(p))
        r["vs"] = {p: _ratio(r["steps_per_s"], speed[p]) for p in peers if p != r["runner"]}
        r["peer"] = group.peer
        r["vs_peer"] = _ratio(r["steps_per_s"], speed.get(group.peer)) if group.peer else None
        r["target"] = group.targets.get(r["runner"])
        r["target_met"] = None if r["target"] is None or r["vs_peer"] is None else r["vs_peer"] >= r["target"]
        r["versus"] = [_versus(t, r, speed, ours_best) for t in group.versus if t.runner == r["runner"]]
        if r["layout"] is not None:
            r["best"] = r is fastest[r["runner"]]
    return rows


def _versus(target: Target, row: dict, speed: dict[str, float], ours_best: float | None) -> dict:
    """``target`` checked on ``row``: ``{"over", "least", "ratio", "met"}``
    (ratio and met None where what it is over did not run); over every
    peer, ``over`` names the slowest ratio's peer."""
    over = target.over
    if over == EVERY_PEER:
        ratios = row["vs"]
        over = min(ratios, key=lambda p: ratios[p]) if ratios else EVERY_PEER
        ratio = ratios.get(over)
        over = f"every peer (least over {over})" if ratios else over
    elif over == BEST_LAYOUT:
        ratio = _ratio(row["steps_per_s"], ours_best)
    else:
        ratio = _ratio(row["steps_per_s"], speed.get(over))
    return {"over": over, "least": target.least, "ratio": ratio, "met": None if ratio is None else ratio >= target.least}


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
        wl = _workload(w)
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
