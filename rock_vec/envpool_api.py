"""EnvPool's asynchronous batch API, mixed into ``AsyncVectorEnv``.

    envs.async_reset()
    obs, rew, term, trunc, info = envs.recv()     # the first batch_size envs to finish
    envs.send(actions, info["env_id"])

The mixin only checks arguments and moves actions and results; the machinery
(per-worker rings of env ids, the output ring of blocks) is
``rock_vec.engine.batches``. It relies on the attributes ``AsyncVectorEnv`` sets up
(``_io``, a ``PoolSession``; ``_pool`` and ``_batches``, its pool's) and on its
argument checks (``_assert_open``, ``_assert_idle``, ``_seed_list``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from . import errors
from .infos import batch_infos


def env_ids(env_id, num_envs: int, where: str = "the pool has") -> np.ndarray:
    """``send``'s ``env_id`` as an array (all envs when None).

    Raises:
        ValueError: not a 1-D array of ints, ids out of range, or repeated.
    """
    ids = np.arange(num_envs) if env_id is None else np.asarray(env_id)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"env_id must be a 1-D array of ints, got {ids.dtype} of shape {ids.shape}")
    listed = ids.tolist()  # a batch is a few ids: Python's set and min beat numpy's calls on them
    if listed and (min(listed) < 0 or max(listed) >= num_envs):
        bad = [i for i in listed if not 0 <= i < num_envs]
        raise ValueError(f"env_id {bad} out of range: {where} envs 0..{num_envs - 1}")
    if len(set(listed)) != len(listed):
        raise ValueError(f"env_id repeats ids: {listed}")
    return ids


class _BatchInfos:
    """gymnasium's ``_add_info`` over a batch of ``size`` rows."""

    _add_info = VectorEnv._add_info

    def __init__(self, size: int):
        self.num_envs = size


class EnvPoolAPI:
    """``async_reset`` / ``send`` / ``recv`` / ``step_envs`` on a pool."""

    def async_reset(self, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None) -> None:
        """Resets every env; their first observations come back through :meth:`recv`,
        ``batch_size`` at a time. Envs still running are waited for and their
        results dropped, so this resets the whole pool at any time.

        Raises:
            ValueError, TypeError: on bad seeds (see :meth:`reset`).
        """
        self._assert_open()
        self._assert_idle("async_reset")
        seeds = self._seed_list(seed)
        options = self._arrays.inputs(options)
        self._pool.quiesce()
        self._batches.restart()
        self._io.start_reset(seeds, [options] * self.num_envs, into_rows=True)
        self._batches.started_all()

    def send(self, actions, env_id=None) -> None:
        """Starts a step of the envs ``env_id`` (all envs when None) with ``actions``.

        Raises:
            ValueError: on ids out of range, repeated, or already running, or
                actions that do not match the ids (checked before anything is sent).
        """
        self._assert_open()
        self._assert_idle("send")
        ids = env_ids(env_id, self.num_envs)
        running = ids[self._batches.running[ids]]
        if running.size:
            raise ValueError(f"envs {running.tolist()} are already running: recv their results before sending again")
        actions_io = self._io.actions
        actions_io.write(actions_io.check(self._arrays.inputs(actions), len(ids)), ids)
        self._batches.send(ids)

    def recv(self, timeout: float | None = None):
        """The next ``batch_size`` envs to finish, in finishing order.

        Returns:
            observations, rewards, terminations, truncations, infos, with
            ``infos["env_id"]`` (int32) saying which env each row is.

        Raises:
            NoAsyncCallError: nothing is running (recv without send).
            RockVecError: fewer envs are running than batch_size (it would wait forever).
            multiprocessing.TimeoutError: after ``timeout`` seconds.
            WorkerDiedError: naming the env ids a dead worker had in flight.
        """
        self._assert_open()
        in_flight = self._batches.in_flight
        if in_flight == 0:
            raise errors.NoAsyncCallError("Calling `recv` without any env running: send() or async_reset() first",
                                          "recv")
        if in_flight < self.batch_size:
            raise errors.RockVecError(
                f"only {in_flight} envs are running, fewer than batch_size={self.batch_size}: recv would wait "
                "forever; send more envs first")
        rows, env_ids = self._batches.wait_block(timeout)
        try:
            a = self._pool.arrays
            copy = self.copy
            obs = self._io.async_obs.read_batch(copy, rows)
            rew, term, trunc = a["a.rew"][rows], a["a.term"][rows], a["a.trunc"][rows]
            if copy:
                rew, term, trunc = rew.copy(), term.copy(), trunc.copy()
            done = np.logical_or(a["a.term"], a["a.trunc"]) if self._io.same_step else None
            infos = batch_infos(_BatchInfos(self.batch_size)._add_info, a["a.info"], a["a.info.len"], rows,
                                self._io.async_final_obs, done)
            infos["env_id"] = env_ids
        finally:
            self._batches.release(rows, env_ids)
        return self._arrays.results((obs, rew, term, trunc, infos))

    def step_envs(self, actions, env_id=None, timeout: float | None = None):
        """EnvPool's ``step(actions, env_id)``: :meth:`send` then :meth:`recv`."""
        self.send(actions, env_id)
        return self.recv(timeout)
