"""The peers rock_vec is measured against, each built as its users build it:
gymnasium's ``SyncVectorEnv`` and ``AsyncVectorEnv``, Stable-Baselines3's
``SubprocVecEnv`` and ``DummyVecEnv``, EnvPool, PufferLib's
Multiprocessing vectoriser; and past one machine PufferLib's Ray vectoriser
and one Ray actor per env (``ActorPerEnv``).

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
import numpy as np

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


def pufferlib_ray_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """PufferLib's Ray vectoriser on the whole batch, on the Ray cluster this
    process joined: one actor per worker (PufferLib's ``Serial``, one CPU
    each), a worker per node as rock_vec.ray has a pool per node (the most
    that divide num_envs), each step a ``send`` and a ``recv`` call per worker."""
    import pufferlib.vector
    import ray

    nodes = sum(1 for n in ray.nodes() if n["Alive"])
    workers = max(w for w in range(1, min(num_envs, nodes) + 1) if num_envs % w == 0)
    return pufferlib.vector.make(functools.partial(_puffer_env, wl), backend=_puffer_ray(),
                                 num_envs=num_envs, num_workers=workers, batch_size=num_envs)


def _puffer_ray():
    """PufferLib's Ray vectoriser, but for its ``close``, which ends this
    process's Ray session (``ray.shutdown()``): this one ends only its actors;
    and with the ``num_envs`` its Multiprocessing vectoriser has."""
    import pufferlib.vector

    class PufferRayKeepingRay(pufferlib.vector.Ray):
        @property
        def num_envs(self):  # as its Multiprocessing vectoriser has
            return self.agents_per_batch

        def close(self):
            self.ray.get([e.close.remote() for e in self.envs])
            for e in self.envs:
                self.ray.kill(e)

    return PufferRayKeepingRay


class ActorPerEnv:
    """One Ray actor per env, the design of Tianshou's ``RayVectorEnv`` and of
    SB3's Ray VecEnv proposal (SB3 issue 1345), as its baseline: a step is a
    call per env, gathered with one ``ray.get``; each actor resets its env
    when it ends. Actors ask for no CPUs (Tianshou's ``num_cpus=0``), so any
    number fits the cluster."""

    def __init__(self, env_fns: list):
        import ray

        self.ray, self.num_envs = ray, len(env_fns)
        self.actors = [ray.remote(num_cpus=0)(_EnvActor).remote(fn) for fn in env_fns]
        self.single_observation_space, self.single_action_space = ray.get(self.actors[0].spaces.remote())
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    def reset(self, seed=None, options=None):
        seeds = [None] * self.num_envs if seed is None else [seed + i for i in range(self.num_envs)]
        obs = self.ray.get([a.reset.remote(s) for a, s in zip(self.actors, seeds)])
        return np.stack(obs), {}

    def step(self, actions):
        results = self.ray.get([a.step.remote(act) for a, act in zip(self.actors, actions)])
        obs, rew, term, trunc = zip(*results)
        return np.stack(obs), np.array(rew), np.array(term), np.array(trunc), {}

    def close(self):
        for a in self.actors:
            self.ray.kill(a)


class _EnvActor:
    """One env in a Ray actor (``ActorPerEnv``)."""

    def __init__(self, make):
        self.env = make()

    def spaces(self):
        return self.env.observation_space, self.env.action_space

    def reset(self, seed):
        return self.env.reset(seed=seed)[0]

    def step(self, action):
        obs, rew, term, trunc, _ = self.env.step(action)
        if term or trunc:
            obs, _ = self.env.reset()
        return obs, rew, term, trunc


def actor_per_env_envs(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    """``ActorPerEnv`` on the Ray cluster this process joined."""
    return ActorPerEnv(_env_fns(wl, num_envs))


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
