"""One gymnasium ``VectorEnv`` over rock_vec pools on many Ray nodes.

A trainer that outgrows one machine's CPUs keeps its loop and its one
``VectorEnv``; the envs move into rock_vec pools, one Ray actor per pool,
spread over the cluster's nodes. Inside a node nothing changes: the actor's
pool steps its envs through its own shared segment, with every pool option
(backend, envs per worker, restart policy, placement). Across nodes a step is
one actor call per pool, never one per env, and each pool's results come
back as one array per field (Ray ships a numpy array as one contiguous
buffer: inline in the reply below 100 KiB, through the object store above).
The learner writes them into its own arrays, in env order, and merges the
pools' infos as SyncVectorEnv would have batched them (``merge_batched``),
so results are SyncVectorEnv's, type for type.

    import rock_vec.ray

    ray.init(address="auto")
    envs = rock_vec.ray.make_vec("CartPole-v1", num_envs=64)   # pools="auto": one per node

Ray is the engine: placement is Ray's scheduling (``pools="auto"`` pins one
pool to each live node with a node's CPUs; a number of pools is spread with
Ray's SPREAD strategy), and an actor's failure is Ray's ``RayActorError``,
raised here as rock_vec's ``WorkerDiedError`` naming the pool, its node and
its envs. The actors belong to this driver: Ray ends them when it ends, and
each pool's fork server then removes its workers and segment.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from .. import errors, vector_env
from ..engine.options import PoolOptions, check_int
from ..engine.session import options_and_env_kwargs
from ..infos import merge_batched

#: Seconds ``close`` waits for each pool to close its envs before its actor is killed.
CLOSE_GRACE_S = 10.0
#: While a call is out, each pool that has not answered is pinged this often
#: (the actor answers from a second thread, whatever its step is doing) ...
PING_S = 0.5
#: ... and one whose last answer is older than this is dead: Ray itself takes
#: 15-55 s to declare a node dead with its default health checks.
DEAD_S = 2.5


class PoolActor:
    """A Ray actor's body: one rock_vec pool on the actor's node. Its results
    are the pool's own arrays (``copy=False``): Ray serializes a method's
    return value before the actor runs its next call, so they never change
    under the copy."""

    def __init__(self, build: Callable[[], VectorEnv], spec: gym.envs.registration.EnvSpec | None = None):
        if spec is not None:  # an id the driver registered (ALE after gym.register_envs): this node knows it now
            gym.registry.setdefault(spec.id, spec)
        self.envs = build()

    def describe(self) -> dict:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address(),
                "pid": os.getpid(), "workers": list(self.envs.worker_pids), "split": str(self.envs.split)}

    def spaces(self) -> tuple:
        e = self.envs
        return e.single_observation_space, e.single_action_space, e.metadata, e.render_mode, e.spec

    def reset(self, seed, options):
        return self.envs.reset(seed=seed, options=options)

    def step(self, actions):
        return self.envs.step(actions)

    def call(self, name: str, args: tuple, kwargs: dict) -> tuple:
        return self.envs.call(name, *args, **kwargs)

    def set_attr(self, name: str, values: list) -> None:
        self.envs.set_attr(name, values)

    def close(self) -> None:
        self.envs.close()

    def ping(self) -> bool:
        return True


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

    _actors: list | tuple = ()  # until the pools start (a refused call ends before)
    _finalizer = None
    _dead: set[int] = frozenset()  # pools found dead: close does not wait for them
    _broken: BaseException | None = None  # the error every call raises once a pool died

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], *, pools: int | str = "auto",
                 cpus_per_pool: int | None = None, batch_size: int | None = None, copy: bool = True,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, **options: Any):
        env_fns = list(env_fns)
        mode = AutoresetMode(autoreset_mode)
        PoolOptions.of(options, "rock_vec.ray.AsyncVectorEnv")  # bad options fail here, not on every node

        def build(lo: int, hi: int):
            fns = env_fns[lo:hi]
            return lambda: vector_env.AsyncVectorEnv(fns, copy=False, autoreset_mode=mode, **options)

        self._start(len(env_fns), build, None, pools=pools, cpus_per_pool=cpus_per_pool, batch_size=batch_size,
                    copy=copy, mode=mode)

    @classmethod
    def _of_id(cls, env_id: str, num_envs: int, env_kwargs: dict, options: dict, **layout) -> "AsyncVectorEnv":
        self = cls.__new__(cls)
        spec = gym.spec(env_id)  # fails here, with gymnasium's message, on an unknown id
        mode = layout["mode"]

        def build(lo: int, hi: int):
            return lambda: vector_env.make_vec(env_id, num_envs=hi - lo, copy=False, autoreset_mode=mode,
                                               env_kwargs=env_kwargs, **options)

        self._start(num_envs, build, spec, **layout)
        return self

    def _start(self, num_envs: int, build, spec, *, pools, cpus_per_pool, batch_size, copy: bool,
               mode: AutoresetMode) -> None:
        ray = _ray()
        if not ray.is_initialized():
            raise RuntimeError("rock_vec.ray needs a Ray cluster: call ray.init(address=...) first")
        placements = _placements(ray, pools, cpus_per_pool)
        if len(placements) > num_envs:
            raise ValueError(f"{len(placements)} pools cannot share {num_envs} envs: at least one env per pool")
        bounds = [round(k * num_envs / len(placements)) for k in range(len(placements) + 1)]
        self.num_envs, self.copy = num_envs, copy
        self.ranges = list(zip(bounds[:-1], bounds[1:]))
        self.batch_size = _batch_size(batch_size, num_envs, self.ranges)
        self._pool_of = np.repeat(np.arange(len(self.ranges)), [hi - lo for lo, hi in self.ranges])
        self._flight: dict[int, tuple[Any, str]] = {}  # pool -> its call started by send/async_reset, and which
        self._actors: list = []
        self._finalizer = weakref.finalize(self, _kill, ray, self._actors)
        self._broken, self._dead = None, set()
        remote = ray.remote(PoolActor)
        for (lo, hi), (cpus, strategy) in zip(self.ranges, placements):
            # Two threads: one runs the calls (one at a time: this learner waits for each), one answers pings.
            self._actors.append(remote.options(num_cpus=cpus, scheduling_strategy=strategy, max_concurrency=2)
                                .remote(build(lo, hi), spec))
        try:
            # No pings yet: an actor answers none before its pool is built.
            self.pools = self._get([a.describe.remote() for a in self._actors], "startup", watch=False)
            obs_space, act_space, metadata, render_mode, env_spec = ray.get(self._actors[0].spaces.remote())
        except BaseException:
            self.close()
            raise
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = gym.vector.utils.batch_space(obs_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(act_space, num_envs)
        self.metadata = dict(metadata, autoreset_mode=mode)
        self.render_mode, self.spec = render_mode, env_spec
        self.closed = False
        self._obs: list | None = None  # each pool's last observations (a masked reset keeps the others')
        self._out = None  # the arrays returned when copy=False

    # ---- the calls ----

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Resets every env (or those ``options["reset_mask"]`` selects), env
        ``i`` with ``seed + i`` (an int) or ``seed[i]`` (a list)."""
        self._check_idle("reset")
        seeds = self._seeds(seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(f"`options['reset_mask']` must be a bool array of shape ({self.num_envs},), "
                                 f"got {mask.dtype} of shape {mask.shape}")
        if self._obs is None and mask is not None and not mask.all():
            raise ValueError("the first reset must reset every env: `options['reset_mask']` is not all True")
        calls = {}
        for p, (lo, hi) in enumerate(self.ranges):
            if mask is not None and not mask[lo:hi].any():
                continue  # Sync leaves these envs as they are
            part = options if mask is None else dict(options, reset_mask=mask[lo:hi])
            calls[p] = self._actors[p].reset.remote(seeds[lo:hi], part)
        results = dict(zip(calls, self._get(list(calls.values()), "reset", list(calls))))
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
        refs = [a.step.remote(_rows(actions, lo, hi, self.num_envs))
                for a, (lo, hi) in zip(self._actors, self.ranges)]
        results = self._get(refs, "step")
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
        seeds = self._seeds(seed)
        if self._flight:
            self._wait([ref for ref, _ in self._flight.values()], "async_reset", list(self._flight), len(self._flight))
        self._flight = {p: (self._actors[p].reset.remote(seeds[lo:hi], options), "reset")
                        for p, (lo, hi) in enumerate(self.ranges)}

    def send(self, actions, env_id=None) -> None:
        """Starts a step of the envs ``env_id`` (all when None; whole pools)
        with ``actions`` (row ``k`` for env ``env_id[k]``): one call per pool.

        Raises:
            ValueError: ids out of range, repeated, running, or not whole
                pools; actions that do not match the ids. Nothing is sent then.
        """
        self._check_open()
        ids = np.arange(self.num_envs) if env_id is None else np.asarray(env_id)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ValueError(f"env_id must be a 1-D array of ints, got {ids.dtype} of shape {ids.shape}")
        bad = ids[(ids < 0) | (ids >= self.num_envs)]
        if bad.size:
            raise ValueError(f"env_id {bad.tolist()} out of range: the pools have envs 0..{self.num_envs - 1}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"env_id repeats ids: {ids.tolist()}")
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
            self._flight[p] = (self._actors[p].step.remote(part), "step")

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
        done = sorted(pools[k] for k in self._wait(refs, "recv", pools, self.batch_size // size,
                                                   timeout=timeout)[: self.batch_size // size])
        results, infos, offset = [], {}, 0
        for p in done:
            (ref, kind), (lo, hi) = self._flight.pop(p), self.ranges[p]
            r = _ray().get(ref)
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
        return sum(self._get([a.call.remote(name, args, kwargs) for a in self._actors], f"call({name!r})"), ())

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
        self._get([a.set_attr.remote(name, list(values[lo:hi])) for a, (lo, hi) in zip(self._actors, self.ranges)],
                  f"set_attr({name!r})")

    def close_extras(self, **kwargs: Any) -> None:
        """Closes every pool (its envs, workers and segment), then ends its actor."""
        ray = _ray()
        if self._actors and ray.is_initialized():
            done = [a.close.remote() for p, a in enumerate(self._actors) if p not in self._dead]
            if done:
                ray.wait(done, num_returns=len(done), timeout=CLOSE_GRACE_S)
        if self._finalizer is not None:
            self._finalizer()

    # ---- the pieces ----

    def _check_idle(self, what: str) -> None:
        self._check_open()
        if self._flight:
            raise errors.RockVecError(f"`{what}` while envs are running from send() or async_reset(): recv them "
                                      "first")

    def _seeds(self, seed) -> list:
        """Env ``i``'s seed: ``seed + i`` (an int), ``seed[i]`` (a list) or None."""
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"If seeds are passed as a list the length must match num_envs={self.num_envs} "
                             f"but got length={len(seeds)}.")
        return seeds

    def _check_open(self) -> None:
        if self._broken is not None:
            raise self._broken
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

    def _get(self, refs: list, what: str, pools: list[int] | None = None, watch: bool = True) -> list:
        """The calls' results, in order (see ``_wait``)."""
        self._wait(refs, what, pools, len(refs), watch)
        return _ray().get(refs)

    def _wait(self, refs: list, what: str, pools: list[int] | None, num_returns: int, watch: bool = True,
              timeout: float | None = None) -> list[int]:
        """Waits until ``num_returns`` of the calls ``refs`` (to ``pools``,
        all in order when None) are done; returns the indices of those done.
        A pool's env error is raised as the env raised it; a dead actor, or
        (``watch``) one that answers no ping for ``DEAD_S`` (its node lost,
        its process frozen), as ``WorkerDiedError`` naming the pool.

        Raises:
            multiprocessing.TimeoutError: after ``timeout`` seconds.
        """
        ray = _ray()
        pools = list(range(len(refs))) if pools is None else pools
        pings: dict[int, tuple[Any, float]] = {}  # pool -> (its ping, when the last answer or the call began)
        started = time.monotonic()
        while True:
            ready, _ = ray.wait(refs, num_returns=num_returns, timeout=PING_S if watch else timeout)
            ready = set(ready)
            try:
                for r in ready:
                    ray.get(r)  # a failed call raises now, before the others end
            except ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None
            except ray.exceptions.RayActorError as exc:
                p = next((p for p, r in zip(pools, refs) if _failed(ray, r)), pools[0])
                raise self._died(p, what, str(exc)) from exc
            if len(ready) >= num_returns:
                return [k for k, r in enumerate(refs) if r in ready]
            now = time.monotonic()
            if timeout is not None and now - started >= timeout:
                raise errors.TimeoutError(f"the call to `{what}` has timed out after {timeout} second(s).")
            for p, r in zip(pools, refs):
                if r in ready:
                    continue
                ping, since = pings.get(p, (None, started))
                if ping is not None and ray.wait([ping], timeout=0)[0]:
                    ping, since = None, now
                if now - since > DEAD_S:
                    raise self._died(p, what, f"no answer to rock_vec's pings for {now - since:.1f} s (its node "
                                              "lost or its process frozen)")
                pings[p] = (ping or self._actors[p].ping.remote(), since)

    def _died(self, p: int, what: str, why: str) -> errors.WorkerDiedError:
        """Pool ``p``'s end, named; the env is unusable after it."""
        lo, hi = self.ranges[p]
        where = getattr(self, "pools", None)
        node = (f"node {where[p]['node']} at {where[p]['address']}, actor pid {where[p]['pid']}" if where
                else "while it started")
        self._broken = errors.WorkerDiedError(
            f"rock_vec.ray: pool {p} ({node}; envs {lo}..{hi - 1}) died during `{what}`: {why}",
            worker=p, pid=where[p]["pid"] if where else -1, env_ids=list(range(lo, hi)), exit_code=None, signal=None)
        self._dead.add(p)
        return self._broken


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


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("rock_vec.ray needs Ray: pip install 'rock-vec[ray]'") from exc
    return ray


def _placements(ray, pools, cpus_per_pool) -> list[tuple[int, Any]]:
    """(CPUs, Ray scheduling strategy) of each pool."""
    check_int("cpus_per_pool", cpus_per_pool)
    if pools == "auto":
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [(n["NodeID"], int(n["Resources"].get("CPU", 0))) for n in ray.nodes() if n["Alive"]]
        chosen = [(cpus_per_pool or cpus, NodeAffinitySchedulingStrategy(node, soft=False))
                  for node, cpus in nodes if cpus >= (cpus_per_pool or 1)]
        if not chosen:
            raise RuntimeError(f"no live Ray node has {cpus_per_pool or 1} CPU(s) for a pool: {nodes}")
        return chosen
    if not isinstance(pools, (int, np.integer)) or isinstance(pools, bool) or pools < 1:
        raise ValueError(f"pools must be 'auto' or a positive int, got {pools!r}")
    return [(cpus_per_pool or 1, "SPREAD")] * int(pools)


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


def _failed(ray, ref) -> bool:
    try:
        ray.get(ref, timeout=0)
    except ray.exceptions.GetTimeoutError:
        return False
    except Exception:  # noqa: BLE001 - this call failed
        return True
    return False


def _kill(ray, actors: list) -> None:
    """Ends every pool's actor (its fork server then removes its workers and segment)."""
    if ray.is_initialized():
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
    actors.clear()
