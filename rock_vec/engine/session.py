"""A face's session with a pool (``PoolSession``), the part every face
shares: how the envs are described (spaces, metadata), actions and
requests in, results out, calls on chosen envs.

The faces add their own conventions on top: gymnasium's call states,
errors and batched infos (``vector_env``, ``envpool_api``), SB3's per-env
infos and float32 rewards (``sb3``). Nothing here knows either.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Sequence

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium.spaces import Space
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_differing_spaces, batch_space

from ..placement.cpus import usable_cpus
from ..segment import codec, protocol
from ..segment.actions import Actions
from ..segment.layout import LeafIO
from ..worker.hosting import env_spec
from . import split
from .handouts import Handouts
from .options import PoolOptions, check_int
from .pool import Pool
from .split import Split


def _spec_of(env_id: str, env_kwargs: dict, num_envs: int) -> tuple[dict, list | None]:
    """How workers build ``env_id``: the whole EnvSpec as JSON (so a worker
    builds envs only the learner registered: MiniGrid, ALE, a user's own),
    or, when JSON cannot carry the spec or kwargs, pickled constructors
    (local workers only) that carry the EnvSpec too. Returns (spec, env_fns
    or None)."""
    registered = env_spec(env_id)
    try:
        spec: dict = {"kind": "make", "env_spec": json.loads(registered.to_json()), "kwargs": env_kwargs}
        json.dumps(spec)
        return spec, None
    except (TypeError, ValueError, gym.error.Error):
        return {"kind": "pickle"}, [lambda: gym.make(registered, **env_kwargs)] * num_envs


def options_and_env_kwargs(env_id: str, kwargs: dict, env_kwargs: dict | None, where: str
                           ) -> tuple[PoolOptions, dict]:
    """Splits a face's keywords into rock_vec's options and the env's kwargs.

    With ``env_kwargs`` given, those are the env's and every keyword is an
    option. Without, keywords that name an option are options, the rest the
    env's; a keyword that names an option and also a keyword of the env's
    constructor (or its registration) is refused: it would silently go to
    the pool.

    Raises:
        TypeError: a keyword claimed by both, or (with ``env_kwargs``) one
            that is not an option.
        gymnasium.error.Error: an unregistered env_id.
    """
    if env_kwargs is not None:
        if not isinstance(env_kwargs, dict):
            raise TypeError(f"{where}: env_kwargs must be a dict, got {type(env_kwargs).__name__}")
        return PoolOptions.of(kwargs, where), dict(env_kwargs)
    claimed = PoolOptions.names() & set(kwargs)
    if claimed and (both := sorted(claimed & _env_keywords(env_id))):
        name = both[0]
        raise TypeError(f"{where}: {name!r} is both a rock_vec option and a keyword of {env_id}'s constructor; "
                        f"give the env's as env_kwargs={{{name!r}: ...}} (then every other keyword is a rock_vec "
                        "option)")
    return PoolOptions.take(kwargs)


def _env_keywords(env_id: str) -> set[str]:
    """The keywords ``gymnasium.make(env_id, ...)`` would hand the env: those
    its registration sets and those its constructor names (not a ``**kwargs``
    catch-all, which claims no name)."""
    spec = env_spec(env_id)
    names = set(spec.kwargs)
    try:
        creator = spec.entry_point if callable(spec.entry_point) else \
            gym.envs.registration.load_env_creator(spec.entry_point)
        parameters = inspect.signature(creator).parameters.values()
    except Exception:  # a constructor that cannot be loaded here or inspected: gymnasium.make reports it
        return names
    return names | {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _choose_split(num_envs: int, options: PoolOptions, max_concurrency: int | None) -> Split:
    """Where the envs step (``rock_vec.engine.split``), given the options."""
    cpus = usable_cpus(options.cpus)
    layout = dict(envs_per_worker=options.envs_per_worker, num_workers=options.num_workers,
                  max_concurrency=max_concurrency)
    if options.learner_envs is None and options.backend_name == "docker":
        return split.choose(num_envs, cpus, **layout, all_in_workers="backend='docker' runs every env in a container")
    if options.learner_envs is None and options.batch_size is not None and options.batch_size < num_envs:
        return split.choose(num_envs, cpus, **layout,
                            all_in_workers="async batches smaller than the pool keep the learner free")
    return split.choose(num_envs, cpus, **layout, learner_envs=options.learner_envs)


class PoolSession:
    """A started pool and everything the faces read and write through it.

    Args:
        num_envs: pool size.
        make_one: builds one env, closed untouched, to read the spaces and
            metadata (as gymnasium's AsyncVectorEnv does).
        spec, env_fns: how workers build the envs (see ``Pool``).
        observation_mode: gymnasium's: "same", "different" or (batched, single).
        autoreset_mode: an ``AutoresetMode`` or its value.
        options: rock_vec's ``PoolOptions``.
        max_concurrency: caps the number of worker processes.

    Raises:
        ValueError, TypeError: a bad observation_mode; whatever building the
            pool raises (an env constructor's error, a worker's).
    """

    def __init__(self, num_envs: int, make_one: Callable[[], gym.Env], spec: dict, env_fns: list | None,
                 observation_mode, autoreset_mode, options: PoolOptions, max_concurrency: int | None = None):
        self.num_envs = num_envs
        self.autoreset_mode = (autoreset_mode if isinstance(autoreset_mode, AutoresetMode)
                               else AutoresetMode(autoreset_mode))
        probe = make_one()
        try:
            self.metadata = dict(probe.metadata)
            self.metadata["autoreset_mode"] = self.autoreset_mode
            self.render_mode = probe.render_mode
            self.single_action_space = probe.action_space
            self.action_space = batch_space(self.single_action_space, num_envs)
            if isinstance(observation_mode, tuple) and len(observation_mode) == 2:
                if not all(isinstance(s, Space) for s in observation_mode):
                    raise TypeError("Expected both elements of observation_mode to be Spaces")
                self.observation_space, self.single_observation_space = observation_mode
            elif observation_mode == "same":
                self.single_observation_space = probe.observation_space
                self.observation_space = batch_space(self.single_observation_space, num_envs)
            elif observation_mode == "different":
                self.single_observation_space = probe.observation_space
                self.observation_space = batch_differing_spaces([fn().observation_space for fn in env_fns])
            else:
                raise ValueError(
                    f"Invalid `observation_mode`, expected: 'same' or 'different' or tuple of single and "
                    f"batch observation space, actual got {observation_mode}")
        finally:
            probe.close()
        self.env_fns = env_fns
        self.split = _choose_split(num_envs, options, max_concurrency)
        self.pool = pool = Pool(
            spec=spec, env_fns=env_fns, exact_obs_space=observation_mode == "same",
            obs_space=self.single_observation_space, act_space=self.single_action_space, num_envs=num_envs,
            split=self.split, autoreset_mode=self.autoreset_mode.value, options=options)
        arrays, obs_space = pool.arrays, self.single_observation_space
        self.obs = Handouts(pool.seg, obs_space, pool.obs_leaves, pool.obs_generations)
        self.final_obs = LeafIO(obs_space, pool.obs_leaves, arrays, "fobs")
        self.async_obs = LeafIO(obs_space, pool.obs_leaves, arrays, "a.obs")
        self.async_final_obs = LeafIO(obs_space, pool.obs_leaves, arrays, "a.fobs")
        self.actions = Actions(self.single_action_space, pool.act_leaves, arrays, num_envs)
        self.same_step = self.autoreset_mode == AutoresetMode.SAME_STEP
        self.rew, self.term, self.trunc = arrays["rew"], arrays["term"], arrays["trunc"]
        self.info, self.info_len = arrays["info"], arrays["info.len"]

    @classmethod
    def of_fns(cls, env_fns: Sequence[Callable[[], gym.Env]], options: PoolOptions, observation_mode="same",
               autoreset_mode=AutoresetMode.NEXT_STEP, max_concurrency: int | None = None) -> "PoolSession":
        """A pool of the envs ``env_fns`` build (cloudpickled to the workers).

        Raises:
            ValueError: no env_fns.
            TypeError: an env_fn that is not callable, or that cloudpickle cannot carry.
        """
        env_fns = list(env_fns)
        if not env_fns:
            raise ValueError("env_fns is empty: a pool needs at least one env")
        for i, fn in enumerate(env_fns):
            if not callable(fn):
                raise TypeError(f"env_fns[{i}] is {type(fn).__name__}, not a callable that builds an env")
        try:
            cloudpickle.dumps(env_fns)
        except Exception as exc:
            raise TypeError(f"env_fns cannot be sent to the workers: cloudpickle failed: {exc}") from exc
        return cls(len(env_fns), env_fns[0], {"kind": "pickle"}, env_fns, observation_mode, autoreset_mode,
                   options, max_concurrency)

    @classmethod
    def of_id(cls, env_id: str, num_envs: int, env_kwargs: dict, options: PoolOptions,
              autoreset_mode=AutoresetMode.NEXT_STEP) -> "PoolSession":
        """A pool of ``num_envs`` copies of the registered env ``env_id``.

        Raises:
            ValueError: a non-positive num_envs.
            gymnasium.error.Error: an unregistered env_id (gymnasium's own message).
        """
        check_int("num_envs", num_envs, optional=False)
        env_spec(env_id)  # fails fast, with gymnasium's own message, on an unknown id
        spec, env_fns = _spec_of(env_id, env_kwargs, int(num_envs))
        return cls(int(num_envs), lambda: gym.make(env_id, **env_kwargs), spec, env_fns, "same", autoreset_mode,
                   options)

    # ---- commands ----

    def start_step(self, actions, per_env: bool = False) -> None:
        """Checks and writes ``actions`` (a batch; ``per_env``: one action per
        env, SB3's form) and starts a step of every env (see ``Actions.check``)."""
        self.actions.write(self.actions.check(actions, self.num_envs, per_env))
        self.obs.hold(self.obs.aim())  # nothing below raises before the workers have it
        self.pool.dispatch(protocol.CMD_STEP)

    def start_reset(self, seeds: list, options: list, mask: np.ndarray | None = None, *,
                    into_rows: bool = False) -> None:
        """Starts a reset of the envs in ``mask`` (all when None), each with
        its own seed and options. ``into_rows`` (EnvPool's ``async_reset``):
        each env's first observation comes back as a row of the async arrays,
        in finishing order, and only ``Pool.quiesce`` waits for the workers."""
        pool = self.pool
        rewrite = mask is not None and not into_rows and self.obs.must_rewrite()
        hosts = pool.hosts if mask is None or rewrite else pool.hosts_of(mask)
        requests = {}
        for h in hosts:
            lo, hi = pool.range_of(h)
            requests[h] = {"seeds": seeds[lo:hi], "options": options[lo:hi], "rewrite": rewrite,
                           "mask": None if mask is None else mask[lo:hi].tolist(), "rows": into_rows}
        generation = self.obs.aim()
        pool.dispatch(protocol.CMD_RESET, hosts, requests, collect=not into_rows, what="reset options")
        if not into_rows:
            self.obs.hold(generation)

    def start_call(self, name: str, args: tuple, kwargs: dict) -> None:
        """Starts ``name(*args, **kwargs)`` (or a read of attribute ``name``) on every env."""
        request = {"op": "call", "name": name, "args": args, "kwargs": kwargs}
        self.obs.aim()
        self.pool.dispatch(protocol.CMD_CALL, self.pool.hosts, {h: request for h in self.pool.hosts},
                           what=f"arguments of `{name}`")

    def call_results(self) -> tuple:
        """The results of the call ``start_call`` started, one per env, once collected."""
        results: list = []
        for reply in self.pool.replies():
            results.extend(codec.decode(reply))
        return tuple(results)

    def env_call(self, op: str, name: str, indices: list[int], args: tuple = (), kwargs: dict | None = None,
                 values: list | None = None) -> list:
        """One op (``EnvHost.call``) on the envs ``indices``, in that order,
        dispatched and collected; the results of ops that return something.

        Raises:
            IndexError: an index outside the pool.
        """
        per_host: dict[int, list[int]] = {}
        for k, i in enumerate(indices):
            if not 0 <= i < self.num_envs:
                raise IndexError(f"env index {i} out of range: the pool has envs 0..{self.num_envs - 1}")
            per_host.setdefault(int(self.pool.host_of[i]), []).append(k)
        requests = {
            h: {"op": op, "name": name, "args": args, "kwargs": kwargs or {}, "envs": [indices[k] for k in ks],
                "values": None if values is None else [values[k] for k in ks]}
            for h, ks in per_host.items()}
        generation = self.obs.aim()
        self.pool.dispatch(protocol.CMD_CALL, sorted(requests), requests, what=f"arguments of `{name}`")
        if op == "restart_as_truncated":  # writes every env's results
            self.obs.hold(generation)
        self.pool.collect(None, op)
        results: list = [None] * len(indices)
        for h, reply in zip(sorted(requests), self.pool.replies()):
            if reply is not None:
                for k, value in zip(per_host[h], codec.decode(reply)):
                    results[k] = value
        return results

    # ---- results ----

    def env_infos(self, done: list[bool] | None = None) -> list[list]:
        """Each env's infos of the last step or reset, unbatched: [info], or
        for an env that ended in SAME_STEP mode (``done``), [its last info,
        its reset info] and, when leaves of its final obs travelled with
        them, those leaves third (see ``final_obs_of``)."""
        info, done = self.info, done or [False] * self.num_envs
        return [codec.decode(info[i, :n]) if n else [{}, {}] if done[i] else [{}]
                for i, n in enumerate(self.info_len.tolist())]

    def final_obs_of(self, i: int, env_infos: list) -> Any:
        """Env ``i``'s SAME_STEP final observation, as the env returned it."""
        return self.final_obs.read_one(i, env_infos[2] if len(env_infos) > 2 else None)

    def worker_pids(self) -> list[int]:
        """Each worker's process id on this host (a container's main process), none once closed."""
        if self.pool.closed:
            return []
        return [int(self.pool.seg.slot(w).host_pid) for w in range(self.pool.num_workers)]
