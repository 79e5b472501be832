"""One gymnasium ``VectorEnv`` over rock_vec pools on many Ray nodes.

A trainer that outgrows one machine's CPUs keeps its loop and its one
``VectorEnv``; the envs move into rock_vec pools, one Ray actor per pool,
spread over the cluster's nodes (``actors.Pools``). Inside a node nothing
changes: the actor's pool steps its envs through its own shared segment,
with every pool option (backend, envs per worker, placement). Across nodes
a step is one actor call per pool, never one per env, and each pool's
results come back as one array per field (Ray ships a numpy array as one
contiguous buffer: inline in the reply below 100 KiB, through the object
store above). The learner writes them into its own arrays, in env order,
and merges the pools' infos as SyncVectorEnv would have batched them
(``merge_batched``), so results are SyncVectorEnv's, type for type.

    import rock_vec.ray

    ray.init(address="auto")
    envs = rock_vec.ray.make_vec("CartPole-v1", num_envs=64)   # pools="auto": one per node
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from .. import errors, vector_env
from ..engine.options import PoolOptions, check_int
from ..engine.session import options_and_env_kwargs
from ..envpool_api import env_ids
from ..infos import merge_batched
from ..worker.hosting import env_spec
from .actors import Pools, ray_module

class AsyncVectorEnv(VectorEnv):
    """``env_fns`` stepped in rock_vec pools on the Ray cluster this driver
    joined (``ray.init``), one actor per pool; a gymnasium ``VectorEnv``
    whose results match SyncVectorEnv's over the same envs.

    Args:
        env_fns: callables that build the envs (cloudpickled to the nodes,
            whose Python must import what they need).
        pools: ``"auto"`` (one pool on every live node with at least
            ``cpus_per_pool`` CPUs, a node's CPUs each when that is None) or
            a number of pools (``cpus_per_pool`` CPUs each, 1 when None),
            spread over the nodes by Ray.
        cpus_per_pool: the CPUs each pool's actor asks Ray for; the pool
            sizes its split and spinning to that grant.
        batch_size: envs per ``recv`` (EnvPool's ``send``/``recv``): whole
            pools, the first to finish; a multiple of the pools' size (which
            must then be equal). None: every env.
        copy: as gymnasium's: False returns the same arrays at every step.
        autoreset_mode: NEXT_STEP (default), SAME_STEP or DISABLED, run by
            each pool as SyncVectorEnv runs it.
        options: rock_vec's pool options (``backend``, ``envs_per_worker``,
            ``on_worker_failure``, ...), for every pool.

    Raises:
        ImportError: Ray is missing, naming the extra to install.
        RuntimeError: Ray is not initialized, or no node has the CPUs asked for.
        ValueError: bad ``pools``/``cpus_per_pool``, more pools than envs, or
            a bad option.
    """

    _pools: Pools | None = None  # until they start (a refused call ends before)

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], *, pools: int | str = "auto",
                 cpus_per_pool: int | None = None, batch_size: int | None = None, copy: bool = True,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, **options: Any):
        env_fns = list(env_fns)
        mode = AutoresetMode(autoreset_mode)
        checked = PoolOptions.of(dict(options), "rock_vec.ray.AsyncVectorEnv")  # bad options fail here, not on every node

        def build(lo: int, hi: int):
            fns = env_fns[lo:hi]
            return lambda: vector_env.AsyncVectorEnv(fns, copy=False, autoreset_mode=mode, **options)

        self._start(len(env_fns), build, None, pools=pools, cpus_per_pool=cpus_per_pool, batch_size=batch_size,
                    copy=copy, mode=mode, max_restarts=restart_budget(checked))

    @classmethod
    def _of_id(cls, env_id: str, num_envs: int, env_kwargs: dict, options: dict, **layout) -> "AsyncVectorEnv":
        self = cls.__new__(cls)
        spec = env_spec(env_id)  # fails here, with gymnasium's message, on an unknown id
        mode = layout["mode"]

        def build(lo: int, hi: int):
            return lambda: vector_env.make_vec(env_id, num_envs=hi - lo, copy=False, autoreset_mode=mode,
                                               env_kwargs=env_kwargs, **options)

        self._start(num_envs, build, spec, max_restarts=restart_budget(PoolOptions.of(dict(options), "make_vec")),
                    **layout)
        return self

    def _start(self, num_envs: int, build, spec, *, pools, cpus_per_pool, batch_size, copy: bool,
               mode: AutoresetMode, max_restarts: int) -> None:
        self._pools = p = Pools(num_envs, build, spec, pools, cpus_per_pool, max_restarts)
        self.num_envs, self.copy, self.ranges, self.pools = num_envs, copy, p.ranges, p.info
        try:
            self.batch_size = _batch_size(batch_size, num_envs, self.ranges)
        except ValueError:
            p.close()
            raise
        self._pool_of = np.repeat(np.arange(len(self.ranges)), [hi - lo for lo, hi in self.ranges])
        # pool -> its call started by send/async_reset, which, and the same call to a pool built anew
        self._flight: dict[int, tuple[Any, str, Callable]] = {}
        obs_space, act_space, metadata, render_mode, spec_of_env = p.spaces
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = gym.vector.utils.batch_space(obs_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(act_space, num_envs)
        self.metadata = dict(metadata, autoreset_mode=mode)
        self.render_mode, self.spec = render_mode, spec_of_env
        self.closed = False
        self._obs: list | None = None  # each pool's last observations (a masked reset keeps the others')
        self._out = None  # the arrays returned when copy=False

    # ---- the calls ----

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Resets every env (or those ``options["reset_mask"]`` selects), env
        ``i`` with ``seed + i`` (an int) or ``seed[i]`` (a list)."""
        self._check_idle("reset")
        seeds = vector_env.seed_list(seed, self.num_envs)
        options = None if options is None else dict(options)
        mask = vector_env.pop_reset_mask(options, self.num_envs)
        if self._obs is None and mask is not None and not mask.all():
            raise ValueError("the first reset must reset every env: `options['reset_mask']` is not all True")
        calls = {}
        for p, (lo, hi) in enumerate(self.ranges):
            if mask is not None and not mask[lo:hi].any():
                continue  # Sync leaves these envs as they are
            part = options if mask is None else dict(options, reset_mask=mask[lo:hi])  # options: the mask taken out
            calls[p] = self._pools.actors[p].reset.remote(seeds[lo:hi], part)
        results = dict(zip(calls, self._pools.get(list(calls.values()), "reset", list(calls),
                                                  redo=functools.partial(self._reset_anew, seeds=seeds,
                                                                         options=options))))
        obs = list(self._obs) if self._obs is not None else [None] * len(self.ranges)
        infos: dict = {}
        for p, (o, info) in results.items():
            obs[p] = o
            merge_batched(infos, info, self.ranges[p][0], self.num_envs)
        self._obs = obs
        return self._joined(obs), infos

    def step(self, actions):
        """Steps every env with its row of ``actions``: one call per pool,
        all pools at once."""
        self._check_idle("step")
        if self._obs is None or any(o is None for o in self._obs):
            raise gym.error.ResetNeeded("Cannot call `step` before calling `reset`")
        results = self._pools.call("step", {p: (_rows(actions, lo, hi, self.num_envs),)
                                            for p, (lo, hi) in enumerate(self.ranges)}, redo=self._restarted)
        infos: dict = {}
        for (lo, _), r in zip(self.ranges, results):
            merge_batched(infos, r[4], lo, self.num_envs)
        self._obs = [r[0] for r in results]
        rew = np.concatenate([r[1] for r in results])
        term = np.concatenate([r[2] for r in results])
        trunc = np.concatenate([r[3] for r in results])
        return self._joined(self._obs), rew, term, trunc, infos

    # ---- EnvPool's async batches: whole pools, the first to finish ----

    def async_reset(self, seed: int | list[int | None] | None = None, options: dict | None = None) -> None:
        """Resets every env; the first observations come back through
        :meth:`recv`, ``batch_size`` envs at a time. Pools still running are
        waited for and their results dropped."""
        self._check_open()
        seeds = vector_env.seed_list(seed, self.num_envs)
        if self._flight:
            self._pools.wait([ref for ref, *_ in self._flight.values()], "async_reset", list(self._flight),
                             len(self._flight))
        again = functools.partial(self._reset_anew, seeds=seeds, options=options)
        self._flight = {p: (self._pools.actors[p].reset.remote(seeds[lo:hi], options), "reset", again)
                        for p, (lo, hi) in enumerate(self.ranges)}

    def send(self, actions, env_id=None) -> None:
        """Starts a step of the envs ``env_id`` (all when None; whole pools)
        with ``actions`` (row ``k`` for env ``env_id[k]``): one call per pool.

        Raises:
            ValueError: ids out of range, repeated, running, or not whole
                pools; actions that do not match the ids. Nothing is sent then.
        """
        self._check_open()
        ids = env_ids(env_id, self.num_envs, "the pools have")
        rows = {}
        for p in np.unique(self._pool_of[ids]).tolist():
            lo, hi = self.ranges[p]
            if p in self._flight:
                raise ValueError(f"envs {lo}..{hi - 1} are already running: recv their results before sending again")
            mine = np.flatnonzero(self._pool_of[ids] == p)
            if len(mine) != hi - lo:
                raise ValueError(f"send steps whole pools: pool {p} has envs {lo}..{hi - 1}, env_id gave "
                                 f"{sorted(ids[mine].tolist())}")
            rows[p] = mine[np.argsort(ids[mine])]
        parts = {p: _take(actions, k, len(ids)) for p, k in rows.items()}  # all checked before anything is sent
        for p, part in parts.items():
            self._flight[p] = (self._pools.actors[p].step.remote(part), "step", self._restarted)

    def recv(self, timeout: float | None = None):
        """The first pools to finish, ``batch_size`` envs in all, in pool order.

        Returns:
            observations, rewards, terminations, truncations, infos, with
            ``infos["env_id"]`` (int32) saying which env each row is.

        Raises:
            NoAsyncCallError: nothing is running.
            RockVecError: fewer envs running than ``batch_size``.
            multiprocessing.TimeoutError: after ``timeout`` seconds.
            WorkerDiedError: a pool died, named.
        """
        self._check_open()
        if not self._flight:
            raise errors.NoAsyncCallError("Calling `recv` without any env running: send() or async_reset() first",
                                          "recv")
        running = sum(hi - lo for lo, hi in (self.ranges[p] for p in self._flight))
        if running < self.batch_size:
            raise errors.RockVecError(f"only {running} envs are running, fewer than batch_size={self.batch_size}: "
                                      "recv would wait forever; send more envs first")
        pools = list(self._flight)
        refs = [self._flight[p][0] for p in pools]
        size = self.ranges[0][1] - self.ranges[0][0]
        done = self._pools.wait(refs, "recv", pools, self.batch_size // size, timeout=timeout,
                                redo=lambda p: self._flight[p][2](p))[: self.batch_size // size]
        for k, p in enumerate(pools):  # a pool built anew runs its call again: its new call is the one to await
            self._flight[p] = (refs[k], *self._flight[p][1:])
        done = sorted(pools[k] for k in done)
        results, infos, offset = [], {}, 0
        for p in done:
            (ref, kind, _), (lo, hi) = self._flight.pop(p), self.ranges[p]
            r = ray_module().get(ref)
            if kind == "reset":
                r = (r[0], np.zeros(hi - lo), np.zeros(hi - lo, bool), np.zeros(hi - lo, bool), r[1])
            merge_batched(infos, r[4], offset, self.batch_size)
            results.append(r)
            self._obs = self._obs or [None] * len(self.ranges)
            self._obs[p] = r[0]  # a later step or masked reset goes on from here
            offset += hi - lo
        infos["env_id"] = np.concatenate([np.arange(*self.ranges[p], dtype=np.int32) for p in done])
        obs = _join(self.single_observation_space, [r[0] for r in results], None)
        return obs, *(np.concatenate([r[k] for r in results]) for k in (1, 2, 3)), infos

    def step_envs(self, actions, env_id=None, timeout: float | None = None):
        """EnvPool's ``step(actions, env_id)``: :meth:`send` then :meth:`recv`."""
        self.send(actions, env_id)
        return self.recv(timeout)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple:
        """``name(*args, **kwargs)`` on every env (or its attribute ``name``)."""
        self._check_open()
        return sum(self._pools.call("apply", {p: ("call", (name, *args), kwargs) for p in range(len(self.ranges))},
                                    f"call({name!r})"), ())

    def get_attr(self, name: str) -> tuple:
        return self.call(name)

    def set_attr(self, name: str, values: list | tuple | object) -> None:
        """Sets ``name`` on every env: ``values[i]`` on env ``i`` (a list or
        tuple), else the one value on all."""
        self._check_open()
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError("Values must be a list or tuple with length equal to the number of environments. "
                             f"Got `{len(values)}` values for {self.num_envs} environments.")
        self._pools.call("apply", {p: ("set_attr", (name, list(values[lo:hi])), {})
                                   for p, (lo, hi) in enumerate(self.ranges)}, f"set_attr({name!r})")

    def close_extras(self, **kwargs: Any) -> None:
        """Closes every pool (its envs, workers and segment), then ends its actor."""
        if self._pools is not None:
            self._pools.close()

    # ---- the pieces ----

    def _restarted(self, p: int):
        """Pool ``p`` was built anew during a step: the step it returns instead
        (every env truncated, ``info["worker_restarted"]``)."""
        return self._pools.actors[p].restarted.remote()

    def _reset_anew(self, p: int, seeds: list, options: dict | None):
        """Pool ``p`` was built anew during a reset: all its envs are reset
        (a masked reset's other envs were lost with it), with the seeds asked."""
        lo, hi = self.ranges[p]
        return self._pools.actors[p].reset.remote(seeds[lo:hi], options)

    def _check_idle(self, what: str) -> None:
        self._check_open()
        if self._flight:
            raise errors.RockVecError(f"`{what}` while envs are running from send() or async_reset(): recv them "
                                      "first")

    def _check_open(self) -> None:
        if self._pools is not None and self._pools.broken is not None:
            raise self._pools.broken
        if self.closed:
            raise gym.error.ClosedEnvironmentError(f"Trying to operate on `{type(self).__name__}`, after a call to "
                                                   "`close()`.")

    def _joined(self, batches: list):
        """The pools' observation batches as one batch of all envs: fresh
        arrays with ``copy``, else the same arrays at every call."""
        if self.copy:
            return _join(self.single_observation_space, batches, None)
        if self._out is None:
            self._out = gym.vector.utils.create_empty_array(self.single_observation_space, self.num_envs)
        self._out = _join(self.single_observation_space, batches, self._out)
        return self._out


def make_vec(env_id: str, num_envs: int = 1, *, pools: int | str = "auto", cpus_per_pool: int | None = None,
             batch_size: int | None = None, copy: bool = True, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
             env_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> AsyncVectorEnv:
    """``num_envs`` copies of ``env_id`` in rock_vec pools on the Ray
    cluster (see ``AsyncVectorEnv``). Each pool builds its envs with
    ``gymnasium.make(env_id, **env_kwargs)`` on its node; an id this driver
    registered (``gym.register``, ``gym.register_envs(ale_py)``) travels with
    its spec, so its entry point only needs to import there. ``kwargs`` are
    pool options and env kwargs, split as ``rock_vec.make_vec`` splits them."""
    check_int("num_envs", num_envs, optional=False)
    # Checked here, where the id is known; each pool builds with the same split of keywords.
    _, env_kwargs = options_and_env_kwargs(env_id, dict(kwargs), env_kwargs, "rock_vec.ray.make_vec")
    options = {k: v for k, v in kwargs.items() if k in PoolOptions.names()}
    return AsyncVectorEnv._of_id(env_id, int(num_envs), env_kwargs, options, pools=pools,
                                 cpus_per_pool=cpus_per_pool, batch_size=batch_size, copy=copy,
                                 mode=AutoresetMode(autoreset_mode))


def restart_budget(options: PoolOptions) -> int:
    """How many times each pool may be built anew: ``max_restarts`` with
    ``on_worker_failure="restart"``, else none."""
    return options.max_restarts if options.on_worker_failure == "restart" else 0


def _batch_size(batch_size: int | None, num_envs: int, ranges: list[tuple[int, int]]) -> int:
    """``recv``'s batch: every env (None), or a whole number of equal pools."""
    if batch_size is None:
        return num_envs
    check_int("batch_size", batch_size)
    sizes = {hi - lo for lo, hi in ranges}
    if batch_size > num_envs or len(sizes) > 1 or batch_size % min(sizes):
        raise ValueError(f"batch_size={batch_size}: recv returns whole pools, so it must be a multiple of the pools' "
                         f"size, and the pools equal (here {[hi - lo for lo, hi in ranges]} envs of {num_envs})")
    return int(batch_size)


def _take(actions, rows: np.ndarray, n: int):
    """Rows ``rows`` of a batch of ``n`` actions (an array, or a dict/tuple of them)."""
    if isinstance(actions, dict):
        return {k: _take(v, rows, n) for k, v in actions.items()}
    if isinstance(actions, tuple):
        return tuple(_take(v, rows, n) for v in actions)
    if len(actions) != n:
        raise ValueError(f"{len(actions)} actions for {n} env ids")
    if isinstance(actions, list):  # each env gets its action as given, a Python scalar stays one
        return [actions[k] for k in rows.tolist()]
    return np.asarray(actions)[rows]


def _rows(actions, lo: int, hi: int, num_envs: int):
    """Rows ``lo..hi-1`` of a batch of actions (an array, or a dict/tuple of them)."""
    if isinstance(actions, dict):
        return {k: _rows(v, lo, hi, num_envs) for k, v in actions.items()}
    if isinstance(actions, tuple):
        return tuple(_rows(v, lo, hi, num_envs) for v in actions)
    if len(actions) != num_envs:
        raise ValueError(f"a batch of {len(actions)} actions for {num_envs} envs")
    return actions[lo:hi]


def _join(space: spaces.Space, batches: list, out):
    """Batches of ``space`` (one per pool, in env order) as one, into ``out`` when given."""
    if isinstance(space, spaces.Dict):
        return {k: _join(s, [b[k] for b in batches], None if out is None else out[k]) for k, s in space.items()}
    if isinstance(space, spaces.Tuple) and isinstance(batches[0], tuple) and len(batches[0]) == len(space):
        return tuple(_join(s, [b[i] for b in batches], None if out is None else out[i])
                     for i, s in enumerate(space.spaces))
    if isinstance(batches[0], np.ndarray):
        return np.concatenate(batches, out=out)
    return tuple(item for b in batches for item in b)  # spaces batched as tuples (Text, Graph, Sequence)
