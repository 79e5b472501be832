"""rock_vec pools as Ray actors on a cluster, and the learner's handle on them.

``PoolActor`` is an actor's body: one pool (a face of it: gymnasium's or
SB3's) on the actor's node, built there. ``Pools`` is the learner's side of
a set of them: where each goes (``pools="auto"``: one on each live node, with
that node's CPUs, pinned with ``NodeAffinitySchedulingStrategy``; a number of
pools spread by Ray's ``SPREAD``), which envs each hosts (contiguous, nearly
equal ranges in env order), and waiting for their calls, where a pool's
death becomes rock_vec's ``WorkerDiedError`` naming it, its node and its envs.

A lost node is slow to show in Ray: it marks a node dead after its health
checks (15-55 s by default). So while a call is out, each pool that has not
answered is pinged every ``PING_S`` (the actor answers from a second thread,
``max_concurrency=2``, whatever its step is doing); one whose last answer is
older than ``DEAD_S`` is dead. The actors belong to the driver: Ray ends
them when it ends, and each pool's fork server then removes its workers and
segment.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from .. import errors
from ..engine.options import check_int

#: Seconds the pools may take to start (Ray waits for free CPUs forever).
START_TIMEOUT_S = 120.0
#: Seconds ``close`` waits for each pool to close its envs before its actor is killed.
CLOSE_GRACE_S = 10.0
#: While a call is out, each pool that has not answered is pinged this often ...
PING_S = 0.5
#: ... and one whose last answer is older than this is dead.
DEAD_S = 2.5


class PoolActor:
    """A Ray actor's body: one rock_vec pool on the actor's node, built by
    ``build`` (a gymnasium ``AsyncVectorEnv`` or an SB3 ``RockVecEnv``).
    Results are the pool's own arrays (``copy=False``): Ray serializes a
    method's return value before the actor runs its next call, so they never
    change under the copy."""

    def __init__(self, build: Callable[[], Any], spec: gym.envs.registration.EnvSpec | None = None):
        if spec is not None:  # an id the driver registered (ALE after gym.register_envs): this node knows it now
            gym.registry.setdefault(spec.id, spec)
        self.envs = build()

    def describe(self) -> dict:
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address(),
                "pid": os.getpid(), "workers": list(self.envs.worker_pids), "split": str(self.envs.split)}

    def spaces(self) -> tuple:
        """The single env's spaces (an SB3 VecEnv's own spaces are the single env's), metadata, render mode."""
        e = self.envs
        return (getattr(e, "single_observation_space", e.observation_space),
                getattr(e, "single_action_space", e.action_space), e.metadata, e.render_mode, getattr(e, "spec", None))

    def reset(self, seed, options):
        return self.envs.reset(seed=seed, options=options)

    def reset_sb3(self, seeds: list, options: list) -> tuple:
        """SB3's reset, with the seeds and options its ``seed``/``set_options`` left for these envs."""
        self.envs._seeds, self.envs._options = seeds, options
        return self.envs.reset(), self.envs.reset_infos

    def step(self, actions):
        return self.envs.step(actions)

    def apply(self, method: str, args: tuple, kwargs: dict):
        """``method(*args, **kwargs)`` of the face (``call``, ``env_method``, ...)."""
        return getattr(self.envs, method)(*args, **kwargs)

    def close(self) -> None:
        self.envs.close()

    def ping(self) -> bool:
        return True


class Pools:
    """The pool actors of one learner's env: ``num_envs`` envs in pools built
    by ``build(lo, hi)`` (envs ``lo..hi-1``), started and described.

    Attributes:
        ranges: each pool's envs, ``(lo, hi)``.
        actors: each pool's Ray actor handle.
        info: each pool's node, address, actor pid, worker pids and split.
        spaces: the single env's observation and action spaces, metadata,
            render mode and spec, from the first pool.

    Raises:
        ImportError: Ray is missing, naming the extra to install.
        RuntimeError: Ray is not initialized, or no node has the CPUs asked for.
        ValueError: bad ``pools``/``cpus_per_pool``, or more pools than envs.
    """

    def __init__(self, num_envs: int, build: Callable[[int, int], Callable[[], Any]],
                 spec: gym.envs.registration.EnvSpec | None, pools: int | str, cpus_per_pool: int | None):
        ray = ray_module()
        if not ray.is_initialized():
            raise RuntimeError("rock_vec.ray needs a Ray cluster: call ray.init(address=...) first")
        placements = _placements(ray, pools, cpus_per_pool)
        if len(placements) > num_envs:
            raise ValueError(f"{len(placements)} pools cannot share {num_envs} envs: at least one env per pool")
        bounds = [round(k * num_envs / len(placements)) for k in range(len(placements) + 1)]
        self.ranges = list(zip(bounds[:-1], bounds[1:]))
        self.actors: list = []
        self.info: list[dict] = []
        self.broken: errors.WorkerDiedError | None = None  # raised by every call once a pool died
        self.dead: set[int] = set()  # pools found dead: close does not wait for them
        self._finalizer = weakref.finalize(self, _kill, ray, self.actors)
        remote = ray.remote(PoolActor)
        for (lo, hi), (cpus, strategy) in zip(self.ranges, placements):
            # Two threads: one runs the calls (one at a time: the learner waits for each), one answers pings.
            self.actors.append(remote.options(num_cpus=cpus, scheduling_strategy=strategy, max_concurrency=2)
                               .remote(build(lo, hi), spec))
        try:
            # No pings yet: an actor answers none before its pool is built; but
            # one Ray cannot place (no CPUs left) would never answer.
            refs = [a.describe.remote() for a in self.actors]
            try:
                self.wait(refs, "startup", None, len(refs), watch=False, timeout=START_TIMEOUT_S)
            except errors.TimeoutError:
                waiting = len(refs) - len(ray.wait(refs, num_returns=len(refs), timeout=0)[0])
                raise errors.TimeoutError(
                    f"rock_vec.ray: {waiting} of {len(refs)} pools had not started within {START_TIMEOUT_S:.0f} s "
                    f"(Ray starts an actor only where its CPUs are free: {placements[0][0]} CPU(s) each; CPUs free "
                    f"in the cluster now: {ray.available_resources().get('CPU', 0):g})") from None
            self.info = ray.get(refs)
            self.spaces = ray.get(self.actors[0].spaces.remote())
        except BaseException:
            self.close()
            raise

    def call(self, method: str, args: dict[int, tuple] | None = None, what: str | None = None) -> list:
        """``method`` on every pool (with ``args[p]``, else no arguments), all
        at once; their results in pool order."""
        refs = [getattr(a, method).remote(*(args[p] if args else ())) for p, a in enumerate(self.actors)]
        return self.get(refs, what or method)

    def get(self, refs: list, what: str, pools: list[int] | None = None, watch: bool = True) -> list:
        """The calls' results, in order (see ``wait``). One ``ray.get`` while
        every pool answers within ``PING_S`` (``wait``'s pings cost a
        ``ray.wait`` and a ``ray.get`` per pool: 0.5 ms a step here)."""
        if self.broken is not None:
            raise self.broken
        ray = ray_module()
        started = time.monotonic()
        try:
            return ray.get(refs, timeout=PING_S if watch else None)
        except ray.exceptions.GetTimeoutError:
            pass
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            self._raise(exc, refs, pools, what)
        self.wait(refs, what, pools, len(refs), watch, started=started)
        return ray.get(refs)

    def _raise(self, exc: BaseException, refs: list, pools: list[int] | None, what: str):
        """A failed call's error: an env's as the env raised it, a dead actor's as ``WorkerDiedError``."""
        ray = ray_module()
        if isinstance(exc, ray.exceptions.RayTaskError):
            raise exc.as_instanceof_cause() from None
        pools = list(range(len(refs))) if pools is None else pools
        p = next((p for p, r in zip(pools, refs) if _failed(ray, r)), pools[0])
        raise self._died(p, what, str(exc)) from exc

    def wait(self, refs: list, what: str, pools: list[int] | None, num_returns: int, watch: bool = True,
             timeout: float | None = None, started: float | None = None) -> list[int]:
        """Waits until ``num_returns`` of the calls ``refs`` (to ``pools``,
        all in order when None) are done; returns the indices of those done.
        A pool's env error is raised as the env raised it; a dead actor, or
        (``watch``) one that answers no ping for ``DEAD_S`` (its node lost,
        its process frozen), as ``WorkerDiedError`` naming the pool.

        ``started``: when the calls began (``time.monotonic``), if before now.

        Raises:
            multiprocessing.TimeoutError: after ``timeout`` seconds.
        """
        if self.broken is not None:
            raise self.broken
        ray = ray_module()
        pools = list(range(len(refs))) if pools is None else pools
        pings: dict[int, tuple[Any, float]] = {}  # pool -> (its ping, when the last answer or the call began)
        started = time.monotonic() if started is None else started
        while True:
            ready = set(ray.wait(refs, num_returns=num_returns, timeout=PING_S if watch else timeout)[0])
            try:
                for r in ready:
                    ray.get(r)  # a failed call raises now, before the others end
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
                self._raise(exc, refs, pools, what)
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
                pings[p] = (ping or self.actors[p].ping.remote(), since)

    def _died(self, p: int, what: str, why: str) -> errors.WorkerDiedError:
        """Pool ``p``'s end, named; every later call raises it."""
        lo, hi = self.ranges[p]
        node = (f"node {self.info[p]['node']} at {self.info[p]['address']}, actor pid {self.info[p]['pid']}"
                if self.info else "while it started")
        self.broken = errors.WorkerDiedError(
            f"rock_vec.ray: pool {p} ({node}; envs {lo}..{hi - 1}) died during `{what}`: {why}",
            worker=p, pid=self.info[p]["pid"] if self.info else -1, env_ids=list(range(lo, hi)), exit_code=None,
            signal=None)
        self.dead.add(p)
        return self.broken

    def close(self) -> None:
        """Closes every live pool (its envs, workers and segment), then ends every actor."""
        ray = ray_module()
        if self.actors and ray.is_initialized():
            done = [a.close.remote() for p, a in enumerate(self.actors) if p not in self.dead]
            if done:
                ray.wait(done, num_returns=len(done), timeout=CLOSE_GRACE_S)
        self._finalizer()


def ray_module():
    """Ray, or an ImportError naming the extra."""
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
        chosen = [(int(cpus_per_pool or cpus), NodeAffinitySchedulingStrategy(node, soft=False))
                  for node, cpus in nodes if cpus >= (cpus_per_pool or 1)]
        if not chosen:
            raise RuntimeError(f"no live Ray node has {cpus_per_pool or 1} CPU(s) for a pool: {nodes}")
        return chosen
    if not isinstance(pools, (int, np.integer)) or isinstance(pools, bool) or pools < 1:
        raise ValueError(f"pools must be 'auto' or a positive int, got {pools!r}")
    return [(int(cpus_per_pool or 1), "SPREAD")] * int(pools)


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
