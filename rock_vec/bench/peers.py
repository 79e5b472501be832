"""The peers rock_vec is measured against, each built as its users build it:
gymnasium's ``SyncVectorEnv`` and ``AsyncVectorEnv``, Stable-Baselines3's
``SubprocVecEnv`` and ``DummyVecEnv``, EnvPool, and PufferLib's
Multiprocessing vectoriser.

Every factory here is ``factory(workload, num_envs, layout, batch_size)`` ->
the envs, as ``runners.RUNNER_SPECS`` calls them. Every peer keeps its
defaults otherwise, and every env but EnvPool's own is built with
``gymnasium.make``, so all carry the same wrappers as rock_vec's. SB3,
EnvPool and PufferLib are optional: each is imported inside its factory, so
this module imports without them (``runners.unavailable`` says which are
missing). Apart from rock_vec's own runners so that what a peer is, and how
fairly it is set up, reads in one place.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import gymnasium as gym

from .workloads import Workload


def _env_fns(wl: Workload, num_envs: int) -> list[Callable[[], gym.Env]]:
    return [functools.partial(gym.make, wl.env_id, **wl.kwargs) for _ in range(num_envs)]


def gym_sync_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return gym.vector.SyncVectorEnv(_env_fns(wl, num_envs))


def gym_async_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return gym.vector.AsyncVectorEnv(_env_fns(wl, num_envs), shared_memory=True)


def sb3_subproc_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    from stable_baselines3.common.vec_env import SubprocVecEnv

    return SubprocVecEnv(_env_fns(wl, num_envs))


def sb3_dummy_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv(_env_fns(wl, num_envs))


def _puffer_env(wl: Workload, buf=None):
    """One env as PufferLib wraps a gymnasium env, writing into its shared ``buf``."""
    import pufferlib.emulation

    return pufferlib.emulation.GymnasiumPufferEnv(env_creator=functools.partial(gym.make, wl.env_id, **wl.kwargs),
                                                  buf=buf)


def puffer_workers(num_envs: int) -> int:
    """PufferLib's own layout: one worker process per core (the most that divide num_envs)."""
    from ..placement.cpus import usable_cpus  # looked up at each call: tests patch it

    return max(w for w in range(1, min(num_envs, usable_cpus()) + 1) if num_envs % w == 0)


def puffer_layouts(num_envs: int) -> tuple[int | None, ...]:
    """The layouts PufferLib is measured in: its own (None: ``puffer_workers``),
    and every env in one worker, which is faster where the learner's busy
    wait in ``recv`` would take a worker's CPU."""
    return (None,) if puffer_workers(num_envs) == 1 else (None, num_envs)


def pufferlib_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """PufferLib's Multiprocessing vectoriser on the whole batch (``batch_size == num_envs``)."""
    import pufferlib.vector

    workers = puffer_workers(num_envs) if layout is None else num_envs // layout
    return pufferlib.vector.make(functools.partial(_puffer_env, wl), backend=pufferlib.vector.Multiprocessing,
                                 num_envs=num_envs, num_workers=workers, batch_size=num_envs)


def envpool_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """EnvPool's own env of the workload (``envpool_id``), its C++ threads in
    the learner process; ``batch_size`` None steps the whole batch (sync)."""
    import envpool

    with warnings.catch_warnings():
        # EnvPool builds float64 Box bounds for float32 observations: gymnasium's warning, harmless here.
        warnings.filterwarnings("ignore", message=".*precision lowered by casting", category=UserWarning)
        envs = envpool.make(wl.envpool_id, env_type="gymnasium", num_envs=num_envs,
                            batch_size=num_envs if batch_size is None else batch_size, seed=0)
        _ = (envs.observation_space, envs.action_space)  # built (and cached) here, under this filter
    return envs
