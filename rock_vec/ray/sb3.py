"""The Stable-Baselines3 face over rock_vec pools on many Ray nodes: ``RockVecEnv``.

    import ray, rock_vec.ray.sb3
    ray.init(address="auto")
    venv = rock_vec.ray.sb3.RockVecEnv.from_id("CartPole-v1", 64)   # pools="auto": one per node
    model = PPO("MlpPolicy", venv)

Each pool actor (``actors.Pools``) hosts a ``rock_vec.sb3.RockVecEnv`` of its
envs, so each node runs SB3's semantics itself (SAME_STEP autoreset,
``terminal_observation``, ``TimeLimit.truncated``, float32 rewards); the
learner joins the pools' results in env order: observations, rewards and
dones into its own arrays, the infos as one list. A step is one call per
pool. Needs Stable-Baselines3 on every node.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from .. import sb3
from ..engine.options import PoolOptions
from ..engine.session import options_and_env_kwargs
from ..errors import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError
from ..worker.hosting import env_spec
from .actors import Pools
from .vector import _join, _rows, restart_budget


class RockVecEnv(VecEnv):
    """An SB3 ``VecEnv`` whose envs run in rock_vec pools on a Ray cluster.

    Args:
        env_fns: callables that build the envs.
        pools, cpus_per_pool: where the pools go (see ``rock_vec.ray.AsyncVectorEnv``).
        **options: rock_vec options for every pool (``envs_per_worker``,
            ``backend``, ...).
    """

    _pools: Pools | None = None

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], *, pools: int | str = "auto",
                 cpus_per_pool: int | None = None, **options: Any):
        env_fns = list(env_fns)
        checked = PoolOptions.of(dict(options), "rock_vec.ray.sb3.RockVecEnv")
        sb3._numpy_only(checked, "rock_vec.ray.sb3.RockVecEnv")

        def build(lo: int, hi: int):
            fns = env_fns[lo:hi]
            return lambda: sb3.RockVecEnv(fns, **options)

        self._start(len(env_fns), build, None, pools, cpus_per_pool, restart_budget(checked))

    @classmethod
    def from_id(cls, env_id: str, n_envs: int, env_kwargs: dict[str, Any] | None = None, *,
                pools: int | str = "auto", cpus_per_pool: int | None = None, **options: Any) -> "RockVecEnv":
        """``n_envs`` copies of the registered env ``env_id`` (see ``rock_vec.sb3.RockVecEnv.from_id``)."""
        pool_options, env_kwargs = options_and_env_kwargs(env_id, dict(options), env_kwargs,
                                                          "rock_vec.ray.sb3.RockVecEnv.from_id")
        sb3._numpy_only(pool_options, "rock_vec.ray.sb3.RockVecEnv.from_id")
        options = {k: v for k, v in options.items() if k in PoolOptions.names()}
        self = cls.__new__(cls)

        def build(lo: int, hi: int):
            return lambda: sb3.RockVecEnv.from_id(env_id, hi - lo, env_kwargs, **options)

        self._start(n_envs, build, env_spec(env_id), pools, cpus_per_pool, restart_budget(pool_options))
        return self

    def _start(self, num_envs: int, build, spec, pools, cpus_per_pool, max_restarts: int) -> None:
        self._pools = p = Pools(num_envs, build, spec, pools, cpus_per_pool, max_restarts)
        self.ranges, self.pools = p.ranges, p.info
        self._refs: list | None = None  # the step in flight
        self._closed = False
        obs_space, act_space, metadata, render_mode, _ = p.spaces
        super().__init__(num_envs, obs_space, act_space)
        self.metadata, self.render_mode = metadata, render_mode

    # ---- stepping ----

    def reset(self):
        self._assert_idle("reset")
        seeds, options = list(self._seeds), [o if o else {} for o in self._options]
        args = {p: (seeds[lo:hi], options[lo:hi]) for p, (lo, hi) in enumerate(self.ranges)}
        results = self._pools.call("reset_sb3", args, "reset",  # a pool built anew is reset alike
                                   redo=lambda p: self._pools.actors[p].reset_sb3.remote(*args[p]))
        self.reset_infos = [info for _, infos in results for info in infos]
        self._reset_seeds()
        self._reset_options()
        return self._as_dummy(_join(self.observation_space, [obs for obs, _ in results], None))

    def step_async(self, actions: np.ndarray | list) -> None:
        self._assert_idle("step_async")
        if len(actions) != self.num_envs:
            raise ValueError(f"a batch of {len(actions)} actions for {self.num_envs} envs")
        self._refs = [a.step.remote(_rows(actions, lo, hi, self.num_envs))
                      for a, (lo, hi) in zip(self._pools.actors, self.ranges)]

    def step_wait(self) -> VecEnvStepReturn:
        self._assert_open()
        if self._refs is None:
            raise NoAsyncCallError("Calling `step_wait` without any prior call to `step_async`.", "step")
        refs, self._refs = self._refs, None
        results = self._pools.get(refs, "step_wait", redo=lambda p: self._pools.actors[p].restarted.remote())
        obs = _join(self.observation_space, [r[0] for r in results], None)
        return (self._as_dummy(obs), np.concatenate([r[1] for r in results]), np.concatenate([r[2] for r in results]),
                [info for r in results for info in r[3]])

    def _as_dummy(self, obs):
        """Observations of the types DummyVecEnv returns: an OrderedDict for a Dict space."""
        return collections.OrderedDict(obs) if isinstance(self.observation_space, spaces.Dict) else obs

    def close(self) -> None:
        """Closes every pool and ends its actor. Idempotent."""
        if self._pools is not None and not self._closed:
            self._pools.close()
        self._closed = True

    def _assert_open(self) -> None:
        if self._pools is not None and self._pools.broken is not None:
            raise self._pools.broken
        if self._closed:
            raise ClosedEnvironmentError(f"Trying to operate on `{type(self).__name__}`, after a call to `close()`.")

    def _assert_idle(self, method: str) -> None:
        self._assert_open()
        if self._refs is not None:
            raise AlreadyPendingCallError(
                f"Calling `{method}` while waiting for a pending call to `step` to complete.", "step")

    # ---- attributes and methods of the envs ----

    def _on_envs(self, method: str, indices: VecEnvIndices, args: tuple = (), kwargs: dict | None = None) -> list:
        """``method(*args, indices=local, **kwargs)`` of each pool's RockVecEnv
        that hosts any of ``indices``; the results in the order asked."""
        self._assert_idle(method)
        targets = sb3.env_indices(indices, self.num_envs)
        by_pool: dict[int, list[int]] = {}
        for i in targets:
            p = next(p for p, (lo, hi) in enumerate(self.ranges) if lo <= i < hi)
            by_pool.setdefault(p, []).append(i)
        refs = {p: self._pools.actors[p].apply.remote(method, args, dict(kwargs or {}, indices=[i - self.ranges[p][0]
                                                                                               for i in ids]))
                for p, ids in by_pool.items()}
        results = dict(zip(refs, self._pools.get(list(refs.values()), method, list(refs))))
        answers = {i: r for p, ids in by_pool.items() if results[p] is not None for i, r in zip(ids, results[p])}
        return [answers.get(i) for i in targets]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._on_envs("get_attr", indices, (attr_name,))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._on_envs("set_attr", indices, (attr_name, value))

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return self._on_envs("env_method", indices, (method_name, *method_args), method_kwargs)

    def has_attr(self, attr_name: str) -> bool:
        self._assert_idle("has_attr")
        return all(self._pools.call("apply", {p: ("has_attr", (attr_name,), {}) for p in range(len(self.ranges))},
                                    "has_attr"))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._on_envs("env_is_wrapped", indices, (wrapper_class,))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self.env_method("render")
