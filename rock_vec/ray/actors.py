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

With a restart budget (``on_worker_failure="restart"``: ``max_restarts``
per pool) a dead pool is built anew, on its own node if that node lives,
else on the live node with the most free CPUs, and the call it missed is
made again there (``redo``): a step comes back with every env of that pool
truncated and ``info["worker_restarted"]``, as a worker replaced inside a
node reports its envs.
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

    def restarted(self):
        """The step a pool built in place of a lost one returns: every env
        reset and reported truncated with ``info["worker_restarted"]``."""
        return self.envs._restarted_step()

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
                 spec: gym.envs.registration.EnvSpec | None, pools: int | str, cpus_per_pool: int | None,
                 max_restarts: int = 0):
        ray = ray_module()
        if not ray.is_initialized():
            raise RuntimeError("rock_vec.ray needs a Ray cluster: call ray.init(address=...) first")
        placements = _placements(ray, pools, cpus_per_pool)
        if len(placements) > num_envs:
            raise ValueError(f"{len(placements)} pools cannot share {num_envs} envs: at least one env per pool")
        bounds = [round(k * num_envs / len(placements)) for k in range(len(placements) + 1)]
        self.ranges = list(zip(bounds[:-1], bounds[1:]))
        self.cpus = [cpus for cpus, _ in placements]
        self.actors: list = []
        self.info: list[dict] = []
        self.broken: errors.WorkerDiedError | None = None  # raised by every call once a pool died
        self.dead: set[int] = set()  # pools found dead: close does not wait for them
        self.max_restarts = max_restarts  # per pool; 0: a dead pool breaks the env
        self.restarts = [0] * len(self.ranges)
        self._build, self._spec = build, spec
        self._finalizer = weakref.finalize(self, _kill, ray, self.actors)
        for p, (_, strategy) in enumerate(placements):
            self.actors.append(self._launch(p, strategy))
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

    def _launch(self, p: int, strategy):
        """Starts pool ``p``'s actor (its envs ``ranges[p]``) where ``strategy`` says."""
        lo, hi = self.ranges[p]
        # Two threads: one runs the calls (one at a time: the learner waits for each), one answers pings.
        return (ray_module().remote(PoolActor)
                .options(num_cpus=self.cpus[p], scheduling_strategy=strategy, max_concurrency=2)
                .remote(self._build(lo, hi), self._spec))

    def call(self, method: str, args: dict[int, tuple] | None = None, what: str | None = None,
             redo: Callable[[int], Any] | None = None) -> list:
        """``method`` on every pool (with ``args[p]``, else no arguments), all
        at once; their results in pool order (see ``get`` for ``redo``)."""
        refs = [getattr(a, method).remote(*(args[p] if args else ())) for p, a in enumerate(self.actors)]
        return self.get(refs, what or method, redo=redo)

    def get(self, refs: list, what: str, pools: list[int] | None = None, watch: bool = True,
            redo: Callable[[int], Any] | None = None) -> list:
        """The calls' results, in order (see ``wait``, which also says what
        ``redo`` does). One ``ray.get`` while every pool answers within
        ``PING_S`` (``wait``'s pings cost a ``ray.wait`` and a ``ray.get``
        per pool: 0.5 ms a step here)."""
        if self.broken is not None:
            raise self.broken
        ray = ray_module()
        started = time.monotonic()
        try:
            return ray.get(refs, timeout=PING_S if watch else None)
        except ray.exceptions.GetTimeoutError:
            pass
        except ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None
        except ray.exceptions.RayActorError:
            pass  # wait names the pool and restarts it, or raises
        refs = list(refs)
        self.wait(refs, what, pools, len(refs), watch, started=started, redo=redo)
        return ray.get(refs)

    def wait(self, refs: list, what: str, pools: list[int] | None, num_returns: int, watch: bool = True,
             timeout: float | None = None, started: float | None = None,
             redo: Callable[[int], Any] | None = None) -> list[int]:
        """Waits until ``num_returns`` of the calls ``refs`` (to ``pools``,
        all in order when None) are done; returns the indices of those done.
        A pool's env error is raised as the env raised it. A dead actor, or
        (``watch``) one that answers no ping for ``DEAD_S`` (its node lost,
        its process frozen), is ``WorkerDiedError`` naming the pool; with
        restarts left the pool is built anew instead and ``redo(p)`` (the
        same call to the new pool's actor) replaces its item of ``refs``
        (without ``redo`` the call's results are lost: the error is raised,
        the env stays usable).

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
            lost = None
            for k, r in enumerate(refs):
                if r in ready:
                    try:
                        ray.get(r)  # a failed call raises now, before the others end
                    except ray.exceptions.RayTaskError as exc:
                        raise exc.as_instanceof_cause() from None
                    except ray.exceptions.RayActorError as exc:
                        lost = (k, str(exc), False)
                        break
            now = time.monotonic()
            if lost is None and len(ready) >= num_returns:
                return [k for k, r in enumerate(refs) if r in ready]
            if lost is None and timeout is not None and now - started >= timeout:
                raise errors.TimeoutError(f"the call to `{what}` has timed out after {timeout} second(s).")
            for k, (p, r) in enumerate(zip(pools, refs)):
                if lost is not None:
                    break
                if r in ready:
                    continue
                ping, since = pings.get(p, (None, started))
                if ping is not None and ray.wait([ping], timeout=0)[0]:
                    ping, since = None, now
                if now - since > DEAD_S:
                    lost = (k, f"no answer to rock_vec's pings for {now - since:.1f} s (its node lost or its "
                               "process frozen)", True)
                else:
                    pings[p] = (ping or self.actors[p].ping.remote(), since)
            if lost is not None:
                k, why, silent = lost
                refs[k] = self._restart(pools[k], what, why, silent, redo)
                pings.pop(pools[k], None)

    def _restart(self, p: int, what: str, why: str, silent: bool, redo: Callable[[int], Any] | None):
        """Pool ``p`` died: builds it anew if its budget allows and returns
        ``redo(p)``, else raises its ``WorkerDiedError`` (the env then stays
        broken). ``silent``: it stopped answering pings, so its node is
        taken for lost (Ray marks a node dead only after its health checks)."""
        if not self.info or self.restarts[p] >= self.max_restarts:  # (none while the pools start)
            budget = f" (restart budget of {self.max_restarts} spent)" if self.max_restarts and self.info else ""
            self.broken = self._died(p, what, why + budget)
            self.dead.add(p)
            raise self.broken
        old = self.info[p]
        self._rebuild(p, lost_node=silent)
        if redo is None:
            raise self._died(p, what, f"{why}; it was restarted on node {self.info[p]['node']}, the call's results "
                                      "are lost", info=old)
        return redo(p)

    def _rebuild(self, p: int, lost_node: bool) -> None:
        """Replaces pool ``p``'s actor: on its own node if that node still
        answers (``lost_node``: it is taken as lost), else on the live node
        with the most free CPUs; a replacement that dies starting is
        replaced on the next node.

        Raises:
            WorkerDiedError: no live node can take it, or none started it
                within ``START_TIMEOUT_S`` (the env is broken then).
        """
        ray = ray_module()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            ray.kill(self.actors[p])  # a frozen one too; its fork server then ends its workers
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.restarts[p] += 1
        own = self.info[p]["node"]
        avoid = set() if not lost_node and _answers(ray, own) else {own}
        while (node := _node_for(ray, own, avoid, self.cpus[p])) is not None:
            self.actors[p] = self._launch(p, NodeAffinitySchedulingStrategy(node, soft=False))
            try:
                self.info[p] = ray.get(self.actors[p].describe.remote(), timeout=START_TIMEOUT_S)
                return
            except ray.exceptions.GetTimeoutError:
                why = f"its replacement had not started within {START_TIMEOUT_S:.0f} s"
                break
            except ray.exceptions.RayActorError:  # its node died too, say
                avoid.add(node)
        else:
            why = f"no live node has {self.cpus[p]} free CPU(s) for it"
        self.broken = self._died(p, "a restart", why)
        self.dead.add(p)
        raise self.broken

    def _died(self, p: int, what: str, why: str, info: dict | None = None) -> errors.WorkerDiedError:
        """Pool ``p``'s end, named (``info``: where it ran, default its entry in ``info``)."""
        lo, hi = self.ranges[p]
        info = info or (self.info[p] if self.info else None)
        node = f"node {info['node']} at {info['address']}, actor pid {info['pid']}" if info else "while it started"
        return errors.WorkerDiedError(
            f"rock_vec.ray: pool {p} ({node}; envs {lo}..{hi - 1}) died during `{what}`: {why}",
            worker=p, pid=info["pid"] if info else -1, env_ids=list(range(lo, hi)), exit_code=None, signal=None)

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


def _node_for(ray, own: str, avoid: set[str], cpus: int) -> str | None:
    """Where a pool's replacement goes: its own node, if alive and not in
    ``avoid``, else the live node with the most free CPUs (at least
    ``cpus``); None if there is none."""
    alive = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] not in avoid]
    if own in alive:
        return own  # the dead actor's CPUs come back to it
    try:  # Ray 2.60 has no public per-node view of free resources
        from ray._private.state import available_resources_per_node
        free = {node: res.get("CPU", 0) for node, res in available_resources_per_node().items()}
    except Exception:  # noqa: BLE001 - a Ray without it: any live node
        free = {node: cpus for node in alive}
    fits = [n for n in alive if free.get(n, 0) >= cpus]
    return max(fits, key=lambda n: free[n]) if fits else None


def _alive(_=None) -> bool:
    return True


def _answers(ray, node: str) -> bool:
    """Whether ``node`` runs a task within ``PING_S * 4`` seconds: an
    actor's death is known to the driver at once, its node's only after
    Ray's health checks, and a replacement sent to a lost node waits for
    those (15-55 s)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(_alive).options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
    try:
        return ray.get(probe.remote(), timeout=PING_S * 4)
    except Exception:  # noqa: BLE001 - a timeout, or the node is known dead
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
