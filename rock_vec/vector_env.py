"""The gymnasium face: ``AsyncVectorEnv`` (drop-in) and ``make_vec``.

This module keeps gymnasium's call states and checks its arguments; the data
path is ``PoolSession``'s, and every byte moves through the segment.
"""

from __future__ import annotations

import multiprocessing
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Space
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.async_vector_env import AsyncState

from . import errors
from .engine.arrays import ArrayBackend
from .engine.options import PoolOptions
from .engine.session import PoolSession, options_and_env_kwargs
from .envpool_api import EnvPoolAPI
from .infos import batch_infos
from .worker.hosting import FORBIDDEN_CALLS

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class AsyncVectorEnv(EnvPoolAPI, VectorEnv):
    """Runs ``num_envs`` environments in worker processes over shared memory.

    A drop-in replacement for ``gymnasium.vector.AsyncVectorEnv``: same
    arguments, same results (batched spaces, float64 rewards, bool flags,
    infos batched with ``_key`` masks, the three autoreset modes). Every
    observation, action, reward, flag and info crosses through one shared
    segment. By default the learner steps a share of the envs itself while
    workers step the rest (``split``; ``learner_envs=0`` keeps every env in
    a worker process).

    Example:
        >>> import gymnasium as gym, rock_vec
        >>> envs = rock_vec.AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4)
        >>> obs, info = envs.reset(seed=42)
        >>> obs.shape, obs.dtype
        ((4, 4), dtype('float32'))
        >>> obs, rew, term, trunc, info = envs.step(envs.action_space.sample())
        >>> rew.dtype, term.dtype
        (dtype('float64'), dtype('bool'))
        >>> envs.close()

    Args:
        env_fns: callables that build the envs (cloudpickled to the workers).
        shared_memory: accepted for compatibility; data always moves through
            shared memory.
        copy: if True (default) results are copies; if False the returned
            arrays are views into the segment, valid until the next call.
        context: ``"spawn"`` starts each worker as a fresh interpreter
            (``python -m rock_vec.worker``); anything else forks workers from
            rock_vec's fork server (default), never from the learner.
        daemon: accepted for compatibility; no worker outlives its pool.
        worker: must be None: rock_vec runs its own worker program.
        observation_mode: 'same', 'different' or ``(batched, single)`` spaces.
        autoreset_mode: an ``AutoresetMode`` or its value.
        max_concurrency: caps the number of worker processes.
        **options: rock_vec's options (``rock_vec.engine.options.PoolOptions``):
        envs_per_worker, num_workers, learner_envs: where the envs step
            (default: one worker per usable CPU but one, the learner
            stepping an equal share, see ``rock_vec.engine.split``;
            nothing is measured; giving a worker layout without
            ``learner_envs`` keeps every env in a worker).
        wait_policy: 'auto' (spin only when every busy process has a CPU),
            'spin' or 'block'.
        on_worker_failure: 'raise' (default) or 'restart' (the dead worker
            is replaced; its envs come back truncated with
            ``info['worker_restarted']``).
        max_restarts: restarts allowed per worker before a crash loop raises.
        info_bytes: bytes per env for one step's info (default 4096).
        start_timeout: seconds allowed for every worker to build its envs.
        batch_size: envs per :meth:`recv` in the async API (default num_envs).

    Raises:
        ValueError: on an argument that cannot apply (e.g. ``worker``) or a
            bad option value.
        TypeError: on an unknown option.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        shared_memory: bool = True,
        copy: bool = True,
        context: str | None = None,
        daemon: bool = True,
        worker: Callable | None = None,
        observation_mode: str | tuple[Space, Space] = "same",
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        max_concurrency: int | None = None,
        **options: Any,
    ):
        options = PoolOptions.of(dict(options, context=context), "AsyncVectorEnv")
        if worker is not None:
            raise ValueError(
                "rock_vec runs its own worker program (rock_vec.worker) over shared memory; a custom "
                "gymnasium `worker` function cannot run there. Pass worker=None.")
        arrays = ArrayBackend(options.array_backend, options.device)  # a missing module fails before any worker starts
        self._adopt(PoolSession.of_fns(env_fns, options, observation_mode, autoreset_mode, max_concurrency), copy, arrays)
        self.observation_mode = observation_mode
        self.shared_memory, self.context, self.daemon = shared_memory, context, daemon

    # ---- construction ----

    def _adopt(self, io: PoolSession, copy: bool, arrays: ArrayBackend) -> None:
        """Takes ``io``'s pool as this vector env's, its results as ``arrays``'."""
        self._io = io
        self._arrays = arrays
        self.num_envs, self.copy, self.env_fns = io.num_envs, copy, io.env_fns
        self.autoreset_mode, self.metadata, self.render_mode = io.autoreset_mode, io.metadata, io.render_mode
        self.single_observation_space, self.observation_space = io.single_observation_space, io.observation_space
        self.single_action_space, self.action_space = io.single_action_space, io.action_space
        self.split = io.split
        self._pool = io.pool
        self._batches = io.pool.batches
        self.batch_size = io.pool.batch_size
        self._state = AsyncState.DEFAULT
        self._reset_mask: np.ndarray | None = None

    @classmethod
    def _from_id(cls, env_id: str, num_envs: int, env_kwargs: dict, copy: bool, autoreset_mode,
                 options: PoolOptions) -> "AsyncVectorEnv":
        self = cls.__new__(cls)
        arrays = ArrayBackend(options.array_backend, options.device)
        self._adopt(PoolSession.of_id(env_id, num_envs, env_kwargs, options, autoreset_mode), copy, arrays)
        self.observation_mode = "same"
        self.shared_memory, self.context, self.daemon = True, options.context, True
        return self

    # ---- the pool's shape ----

    @property
    def placement(self):
        """Where the workers are pinned (``rock_vec.placement.plan.Placement``), or None."""
        return self._pool.placement

    @property
    def num_workers(self) -> int:
        return self._pool.num_workers

    @property
    def worker_pids(self) -> list[int]:
        return self._io.worker_pids()

    @property
    def np_random_seed(self) -> tuple[int, ...]:
        """The np_random seed of every sub-environment."""
        return self.get_attr("np_random_seed")

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """Copies of the sub-environments' random generators, rebuilt from
        their bit generators' states (Generators themselves are not plain data)."""
        generators = []
        for name, state in self._env_call("np_random", "np_random", list(range(self.num_envs))):
            if name not in BIT_GENERATORS:
                raise errors.RockVecError(f"a worker sent an unknown bit generator {name!r}")
            bits = getattr(np.random, name)()
            bits.state = state
            generators.append(np.random.Generator(bits))
        return tuple(generators)

    # ---- reset ----

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Resets the sub-environments (all, or ``options['reset_mask']``).

        Returns:
            The batched observations and the batched info dict.
        """
        self.reset_async(seed=seed, options=options)
        return self.reset_wait()

    def reset_async(self, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Sends the reset to the workers; :meth:`reset_wait` collects it.

        Raises:
            ClosedEnvironmentError: if the env was closed.
            AlreadyPendingCallError: if another call is pending.
            ValueError, TypeError: on a bad seed list or reset_mask.
        """
        self._assert_is_running()
        seeds = self._seed_list(seed)
        self._assert_idle("reset_async")
        options = dict(self._arrays.inputs(options)) if options is not None else None
        mask = pop_reset_mask(options, self.num_envs)
        self._io.start_reset(seeds, [options] * self.num_envs, mask)
        self._reset_mask = mask
        self._state = AsyncState.WAITING_RESET

    def reset_wait(self, timeout: float | None = None):
        """Waits for the reset sent by :meth:`reset_async`.

        Raises:
            NoAsyncCallError: without a prior :meth:`reset_async`.
            multiprocessing.TimeoutError: after ``timeout`` seconds.
        """
        self._assert_is_running()
        self._assert_waiting(AsyncState.WAITING_RESET, "reset_wait")
        self._collect(timeout, "reset_wait")
        io = self._io
        lengths = io.info_len if self._reset_mask is None else io.info_len * self._reset_mask
        infos = batch_infos(self._add_info, io.info, lengths, slice(0, self.num_envs))
        return self._arrays.results((io.obs.read_batch(self.copy), infos))

    # ---- step ----

    def step(self, actions):
        """Steps every sub-environment with ``actions`` (a batch of the action space).

        Returns:
            observations, rewards (float64), terminations (bool), truncations (bool), infos.
        """
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions) -> None:
        """Checks ``actions``, writes them into the segment and starts the step.

        Each env gets its action as given, in the batch's dtype (a list of
        Python ints or floats as Python scalars), as gymnasium's vector envs
        hand them over; the env judges the values.

        Raises:
            TypeError: a scalar instead of a batch, or a dtype that cannot
                travel (object, strings, more than 8 bytes an item).
            ValueError: a batch whose length is not ``num_envs``, or actions
                of the wrong shape; nothing is sent and the pool stays usable.
            KeyError, IndexError: a Dict key or Tuple item missing.
            AlreadyPendingCallError: if another call is pending.
        """
        self._assert_is_running()
        self._assert_idle("step_async")
        self._io.start_step(self._arrays.inputs(actions))
        self._state = AsyncState.WAITING_STEP

    def step_wait(self, timeout: float | None = None):
        """Waits for the step started by :meth:`step_async` and returns its results.

        Raises:
            NoAsyncCallError: without a prior :meth:`step_async`.
            multiprocessing.TimeoutError: after ``timeout`` seconds.
            WorkerDiedError: a worker died (unless ``on_worker_failure='restart'``).
        """
        self._assert_is_running()
        self._assert_waiting(AsyncState.WAITING_STEP, "step_wait")
        self._collect(timeout, "step_wait")
        return self._step_results()

    def _restarted_step(self):
        """A step's results in which every env restarted: each is reset and
        reported truncated with ``info['worker_restarted']``, as the envs of
        a worker replaced during a step (``on_worker_failure='restart'``).
        For a pool built anew in place of a lost one (``rock_vec.ray``)."""
        self._env_call("restart_as_truncated", "", list(range(self.num_envs)))
        return self._step_results()

    def _step_results(self):
        """The last step's results, read from the segment."""
        io = self._io
        done = np.logical_or(io.term, io.trunc) if io.same_step else None
        infos = batch_infos(self._add_info, io.info, io.info_len, slice(0, self.num_envs), io.final_obs, done)
        if self.copy:
            return self._arrays.results((io.obs.read_batch(True), io.rew.copy(), io.term.copy(), io.trunc.copy(),
                                         infos))
        return self._arrays.results((io.obs.read_batch(False), io.rew, io.term, io.trunc, infos))

    # ---- call / attributes ----

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Calls ``name`` on every sub-environment (or reads it if not callable)."""
        self.call_async(name, *args, **kwargs)
        return self.call_wait()

    def render(self):
        """The rendered frames of every sub-environment."""
        return self.call("render")

    def call_async(self, name: str, /, *args: object, **kwargs: object) -> None:
        """Sends a call of ``name`` to every sub-environment.

        Raises:
            ValueError: for reset/step/close (use them directly).
            AlreadyPendingCallError: if another call is pending.
        """
        self._assert_is_running()
        self._assert_idle("call_async")
        if name in FORBIDDEN_CALLS:
            raise ValueError(f"Trying to call function `{name}` with `call`, use `{name}` directly instead.")
        self._io.start_call(name, args, kwargs)
        self._state = AsyncState.WAITING_CALL

    def call_wait(self, timeout: float | None = None) -> tuple[Any, ...]:
        """Collects the results of :meth:`call_async`, one per sub-environment.

        Raises:
            NoAsyncCallError: without a prior :meth:`call_async`.
            multiprocessing.TimeoutError: after ``timeout`` seconds.
        """
        self._assert_is_running()
        self._assert_waiting(AsyncState.WAITING_CALL, "call_wait")
        self._collect(timeout, "call_wait")
        return self._io.call_results()

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The attribute ``name`` of every sub-environment."""
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | object) -> None:
        """Sets attribute ``name`` on every sub-environment (one value each, or
        the same value for all).

        Raises:
            ValueError: if a list/tuple of values does not match num_envs.
        """
        self._assert_is_running()
        if not isinstance(values, (list, tuple)):
            values = [values for _ in range(self.num_envs)]
        if len(values) != self.num_envs:
            raise ValueError(
                "Values must be a list or tuple with length equal to the number of environments. "
                f"Got `{len(values)}` values for {self.num_envs} environments.")
        self._env_call("setattr", name, list(range(self.num_envs)), values=list(values))

    # ---- closing ----

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Closes every sub-environment and reaps every worker.

        Args:
            timeout: seconds the workers get to close their envs before they
                are killed (default 10).
            terminate: kill the workers at once.
        """
        if not hasattr(self, "_pool"):
            return
        finish = None
        if self._state != AsyncState.DEFAULT:
            gym.logger.warn(f"Calling `close` while waiting for a pending call to `{self._state.value}` to complete.")
            finish = None if terminate else f"{self._state.value}_wait"  # as gymnasium: let it finish first
            self._state = AsyncState.DEFAULT
        self._pool.close(grace=0.0 if terminate else (10.0 if timeout is None else timeout), finish=finish)

    def __del__(self):
        if not getattr(self, "closed", True) and hasattr(self, "_pool"):
            self.close(terminate=True)

    # ---- helpers ----

    def _assert_open(self) -> None:
        if self.closed:
            raise errors.ClosedEnvironmentError(
                f"Trying to operate on `{type(self).__name__}`, after a call to `close()`.")

    def _assert_idle(self, method: str) -> None:
        """Raises AlreadyPendingCallError if a `*_async` call awaits its `*_wait`."""
        if self._state != AsyncState.DEFAULT:
            raise errors.AlreadyPendingCallError(
                f"Calling `{method}` while waiting for a pending call to `{self._state.value}` to complete.",
                str(self._state.value))

    def _assert_waiting(self, state: AsyncState, method: str) -> None:
        """Raises NoAsyncCallError unless the `*_async` matching `method` was called."""
        if self._state != state:
            raise errors.NoAsyncCallError(
                f"Calling `{method}` without any prior call to `{state.value}_async`.", state.value)

    def _assert_is_running(self) -> None:
        self._assert_open()
        if self._batches.in_flight and self._state != AsyncState.WAITING_RESET:
            raise errors.AlreadyPendingCallError(
                f"{self._batches.in_flight} envs are running asynchronously (send/recv): recv them, or call "
                "async_reset(), before a synchronous call", "recv")

    def _seed_list(self, seed) -> list:
        return seed_list(seed, self.num_envs)

    def _collect(self, timeout: float | None, what: str) -> None:
        try:
            self._pool.collect(timeout, what)
        except multiprocessing.TimeoutError:
            raise  # the call stays pending; a later wait may still collect it
        except BaseException:
            self._state = AsyncState.DEFAULT
            raise
        finally:
            if not self._pool.pending:
                self._state = AsyncState.DEFAULT

    def _env_call(self, op: str, name: str, indices: list[int], args: tuple = (), kwargs: dict | None = None,
                  values: list | None = None) -> list:
        """``PoolSession.env_call``, when no other call is pending."""
        self._assert_is_running()
        self._assert_idle(op)
        self._state = AsyncState.WAITING_CALL
        try:
            return self._io.env_call(op, name, indices, args, kwargs, values)
        finally:
            self._state = AsyncState.DEFAULT


def seed_list(seed, num_envs: int) -> list:
    """Each env's seed, as gymnasium's vector envs read ``seed``: None for
    all, ``seed + i`` for an int, or a list of one per env.

    Raises:
        ValueError: a list of the wrong length. TypeError: a seed that is
            not a non-negative int or None.
    """
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(
            f"If seeds are passed as a list the length must match num_envs={num_envs} "
            f"but got length={len(seeds)}.")
    for i, s in enumerate(seeds):
        if s is not None and (not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0):
            raise TypeError(f"seed for env {i} is {s!r}; seeds must be non-negative ints or None")
    return [None if s is None else int(s) for s in seeds]


def pop_reset_mask(options: dict | None, num_envs: int) -> np.ndarray | None:
    """Takes ``options['reset_mask']`` out of ``options`` (a copy of the
    user's) and checks it as gymnasium does; a copy of it, or None.

    Raises:
        TypeError: not a numpy array, or not bool. ValueError: of the wrong
            shape, or no True in it.
    """
    if options is None or "reset_mask" not in options:
        return None
    mask = options.pop("reset_mask")
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"`options['reset_mask']` must be a numpy array, got {type(mask)}")
    if mask.shape != (num_envs,):
        raise ValueError(f"`options['reset_mask']` must have shape `({num_envs},)`, got {mask.shape}")
    if mask.dtype != np.bool_:
        raise TypeError(f"`options['reset_mask']` must have `dtype=np.bool_`, got {mask.dtype}")
    if not np.any(mask):
        raise ValueError(
            "`options['reset_mask']` must contain a boolean array with at least one True value, "
            f"got reset_mask={mask}")
    return mask.copy()


def make_vec(
    env_id: str,
    num_envs: int = 1,
    *,
    autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    copy: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> AsyncVectorEnv:
    """Builds a pool of ``num_envs`` copies of the registered env ``env_id``.

    Each worker builds its envs with ``gymnasium.make(env_id, **env_kwargs)``
    from the id itself (nothing pickled), so the same call will run in
    containers. ``kwargs`` are rock_vec's options (``PoolOptions``: see
    ``AsyncVectorEnv``) and, the rest, the env's kwargs. An env whose
    constructor takes a keyword that is also an option (``device``,
    ``batch_size``, ...) gets its kwargs as ``env_kwargs``; then every
    keyword in ``kwargs`` is an option.

    Example:
        >>> import rock_vec
        >>> envs = rock_vec.make_vec("CartPole-v1", num_envs=8, envs_per_worker=4)
        >>> envs.num_workers
        2
        >>> envs.close()

    Raises:
        ValueError: on a non-positive num_envs, an impossible layout or a
            bad option value.
        TypeError: a keyword that is both an option and a keyword of the
            env's constructor, when ``env_kwargs`` is not given.
        gymnasium.error.Error: if env_id is not registered.
    """
    options, env_kwargs = options_and_env_kwargs(env_id, kwargs, env_kwargs, "make_vec")
    return AsyncVectorEnv._from_id(env_id, num_envs, env_kwargs, copy, autoreset_mode, options)
