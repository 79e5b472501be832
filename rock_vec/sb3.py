"""The Stable-Baselines3 face: ``RockVecEnv``, a ``VecEnv`` on a rock_vec pool.

    from stable_baselines3.common.env_util import make_vec_env
    from rock_vec.sb3 import RockVecEnv
    venv = make_vec_env("CartPole-v1", n_envs=16, vec_env_cls=RockVecEnv)
    venv = RockVecEnv.from_id("CartPole-v1", 16, envs_per_worker=8)

The pool runs in gymnasium's SAME_STEP autoreset mode, which is SB3's: an env
that ends is reset in the same step, its last observation goes to
``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]``
says whether the end was a truncation. Rewards are float32 and dones bool, as
``DummyVecEnv`` returns them. Install with ``pip install rock-vec[sb3]``
(after ``pip install torch==2.13.0`` for the CPU build).
"""

from __future__ import annotations

import collections
import warnings
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from .engine.options import PoolOptions
from .engine.session import PoolSession, options_and_env_kwargs
from .errors import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError


class RockVecEnv(VecEnv):
    """A Stable-Baselines3 ``VecEnv`` whose envs run in rock_vec workers.

    Args:
        env_fns: callables that build the envs (as ``SubprocVecEnv`` takes).
        start_method: ``SubprocVecEnv``'s argument: None, ``"fork"`` or
            ``"forkserver"`` fork workers from rock_vec's fork server,
            ``"spawn"`` starts each worker as a fresh interpreter; anything
            else raises ``ValueError`` as multiprocessing does.
        **options: rock_vec options (``envs_per_worker``, ``num_workers``,
            ``wait_policy``, ``on_worker_failure``, ...).

    Raises:
        ValueError: on an unknown ``start_method``.
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env]], start_method: str | None = None, **options: Any):
        pool_options = _numpy_only(PoolOptions.of(dict(options, context=start_method), "RockVecEnv"), "RockVecEnv")
        self._adopt(PoolSession.of_fns(env_fns, pool_options, autoreset_mode=AutoresetMode.SAME_STEP))

    @classmethod
    def from_id(cls, env_id: str, n_envs: int, env_kwargs: dict[str, Any] | None = None,
                **options: Any) -> "RockVecEnv":
        """``n_envs`` copies of the registered env ``env_id``; ``options`` are
        rock_vec options and ``gymnasium.make`` kwargs, or only options when
        ``env_kwargs`` are given (see ``make_vec``)."""
        pool_options, env_kwargs = options_and_env_kwargs(env_id, options, env_kwargs, "RockVecEnv.from_id")
        _numpy_only(pool_options, "RockVecEnv.from_id")
        self = cls.__new__(cls)
        self._adopt(PoolSession.of_id(env_id, n_envs, env_kwargs, pool_options, AutoresetMode.SAME_STEP))
        return self

    def _adopt(self, io: PoolSession) -> None:
        self._io = io
        self._stepping = False  # a step_async awaits its step_wait
        super().__init__(io.num_envs, io.single_observation_space, io.single_action_space)

    # ---- the pool's shape ----

    @property
    def split(self):
        """Which envs the learner steps and which the workers (``rock_vec.engine.split.Split``)."""
        return self._io.split

    @property
    def num_workers(self) -> int:
        return self._io.pool.num_workers

    @property
    def worker_pids(self) -> list[int]:
        return self._io.worker_pids()

    # ---- stepping ----

    def reset(self):
        self._assert_idle("reset")
        io = self._io
        io.start_reset(list(self._seeds), [o if o else None for o in self._options], None)
        io.pool.collect(None, "reset")
        self.reset_infos = [infos[0] for infos in io.env_infos()]
        self._reset_seeds()
        self._reset_options()
        return self._as_dummy(io.obs.read_batch(True))

    def step_async(self, actions: np.ndarray | list) -> None:
        self._assert_idle("step_async")
        # SB3's actions are one per env: a list of dicts or tuples for Dict
        # and Tuple spaces, where gymnasium takes a dict or tuple of batches.
        per_env = isinstance(actions, (list, tuple)) and isinstance(self.action_space, (spaces.Dict, spaces.Tuple))
        self._io.start_step(actions, per_env)
        self._stepping = True

    def step_wait(self) -> VecEnvStepReturn:
        self._assert_open()
        if not self._stepping:
            raise NoAsyncCallError("Calling `step_wait` without any prior call to `step_async`.", "step")
        io = self._io
        try:
            io.pool.collect(None, "step_wait")
        finally:
            self._stepping = bool(io.pool.pending)
        return self._step_results()

    def _restarted_step(self) -> VecEnvStepReturn:
        """A step's results in which every env restarted: each is reset and
        reported done (truncated) with ``info['worker_restarted']``, as the
        envs of a worker replaced during a step. For a pool built anew in
        place of a lost one (``rock_vec.ray``)."""
        self._env_call("restart_as_truncated", "", list(range(self.num_envs)))
        return self._step_results()

    def _step_results(self) -> VecEnvStepReturn:
        """The last step's results, read straight from the segment: every array returned is new."""
        io = self._io
        term, trunc = io.term, io.trunc
        dones = term | trunc
        done_list = dones.tolist()
        infos: list[dict] = []
        for i, (env_infos, done, cut) in enumerate(zip(io.env_infos(done_list), done_list, (trunc & ~term).tolist())):
            info = env_infos[0]
            info["TimeLimit.truncated"] = cut  # keys in DummyVecEnv's order
            if done:
                self.reset_infos[i] = env_infos[1]
                info["terminal_observation"] = io.final_obs_of(i, env_infos)
            infos.append(info)
        return self._as_dummy(io.obs.read_batch(True)), io.rew.astype(np.float32), dones, infos

    def _as_dummy(self, obs):
        """Observations of the types DummyVecEnv returns: an OrderedDict for a Dict space."""
        return collections.OrderedDict(obs) if isinstance(self.observation_space, spaces.Dict) else obs

    def close(self) -> None:
        """Closes every env and reaps every worker; a pending step is waited
        for first (as SubprocVecEnv does). Idempotent."""
        self._io.pool.close(grace=10.0, finish="step_wait" if self._stepping else None)
        self._stepping = False

    def _assert_open(self) -> None:
        if self._io.pool.closed:
            raise ClosedEnvironmentError(f"Trying to operate on `{type(self).__name__}`, after a call to `close()`.")

    def _assert_idle(self, method: str) -> None:
        self._assert_open()
        if self._stepping:
            raise AlreadyPendingCallError(
                f"Calling `{method}` while waiting for a pending call to `step` to complete.", "step")

    def _env_call(self, op: str, name: str, indices: list[int], args: tuple = (), kwargs: dict | None = None,
                  values: list | None = None) -> list:
        self._assert_idle(name or op)
        return self._io.env_call(op, name, indices, args, kwargs, values)

    # ---- attributes and methods of the envs ----

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._env_call("getattr", attr_name, list(self._get_indices(indices)))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        targets = list(self._get_indices(indices))
        self._env_call("setattr_outer", attr_name, targets, values=[value] * len(targets))

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return self._env_call("call", method_name, list(self._get_indices(indices)), method_args, method_kwargs)

    def has_attr(self, attr_name: str) -> bool:
        # Asked in the workers: the attribute itself (a method, say) need not travel.
        return all(self._env_call("hasattr", attr_name, list(range(self.num_envs))))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._env_call("is_wrapped", "", list(self._get_indices(indices)), (wrapper_class,))

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to obtain images.")
            return [None for _ in range(self.num_envs)]
        return self._env_call("call", "render", list(range(self.num_envs)))

    def _get_indices(self, indices: VecEnvIndices) -> list[int]:
        return env_indices(indices, self.num_envs)


def env_indices(indices: VecEnvIndices, num_envs: int) -> list[int]:
    """Env indices as SB3 reads them: None for all, an int or an iterable of
    ints, negative ones counting from the end (a list's rule).

    Raises:
        IndexError: for an index outside the pool.
    """
    if indices is None:
        return list(range(num_envs))
    if isinstance(indices, (int, np.integer)):
        indices = [indices]
    targets = []
    for i in indices:
        if not -num_envs <= i < num_envs:
            raise IndexError(f"env index {i} out of range: the pool has {num_envs} envs")
        targets.append(int(i) % num_envs)
    return targets


def _numpy_only(options: PoolOptions, face: str) -> PoolOptions:
    return options.numpy_only(face, "SB3's VecEnv hands numpy arrays to SB3, which moves them to its device itself")
