"""Synthetic gymnasium envs for benchmarks and tests: a chosen observation
shape and dtype, a chosen CPU cost per step, and nothing else.

Importing this module registers ``rock_vec/Synthetic-v0`` (idempotent)::

    import gymnasium as gym
    env = gym.make("rock_vec.synthetic:rock_vec/Synthetic-v0",
                   obs_shape=(84, 84, 4), obs_dtype="uint8", step_us=100)

The ``module:id`` form (``SYNTHETIC_MAKE_ID``) makes gymnasium import this
module before it looks the id up, so a process that never imported it (a
worker, a container) can still build the env from the id alone.

Observations are cheap on purpose: nothing is allocated per step. Each env
owns two preallocated arrays and returns them in turn, changing a few bytes
per step, so a benchmark measures the vectorisation, not the env's
allocator. Two, not one: gymnasium's runtime env checker (rightly) warns
when two consecutive calls return the same buffer. A returned observation is
overwritten two calls later; copy it to keep it, or pass ``copy_obs=True``
(a fresh array per call, as ``gymnasium.utils.env_checker.check_env``
demands).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["SyntheticEnv", "SYNTHETIC_ID", "SYNTHETIC_MAKE_ID", "register_envs"]

#: The registered id (namespace ``rock_vec``).
SYNTHETIC_ID = "rock_vec/Synthetic-v0"
#: The same id with the module gymnasium must import first: use it where the
#: process building the env may not have imported ``rock_vec.synthetic``.
SYNTHETIC_MAKE_ID = f"{__name__}:{SYNTHETIC_ID}"

OBS_DTYPES = ("uint8", "float32")


def _busy_wait_until_ns(end: int) -> None:
    """Burns CPU (no sleep) until ``time.perf_counter_ns()`` reaches ``end``."""
    while time.perf_counter_ns() < end:
        pass


class SyntheticEnv(gym.Env):
    """An env whose only properties are its observation size and step cost.

    Args:
        obs_shape: shape of the observation (a tuple or list of ints).
        obs_dtype: ``"uint8"`` (Box 0..255) or ``"float32"`` (Box 0..1).
        step_us: microseconds a step takes, its own work included, the rest
            busy CPU (0: no added cost).
        jitter_us: the step time is drawn uniformly from
            ``[step_us - jitter_us, step_us + jitter_us]`` (clipped at 0) with
            the env's own seeded RNG, so a seeded env repeats its timings.
        episode_len: steps per episode; the last step is truncated, never
            terminated.
        copy_obs: return a fresh copy of the observation on every call
            instead of one of the two reused buffers.
        render_mode: None, or ``"rgb_array"``: ``render()`` returns a
            (24, 32, 3) uint8 frame whose red channel is the step count
            modulo 256 and whose green channel is the seed given to the last
            seeded reset modulo 256 (so a frame tells which env and step it
            shows).

    Actions are ``Discrete(4)``; the reward is 1.0 when the action equals the
    step count modulo 4, else 0.0 (deterministic, and it depends on the
    action, so a wrong action routing shows in the rewards).

    Raises:
        ValueError: on an unknown dtype, a non-positive dimension, a negative
            step time or jitter, or a non-positive episode length.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, obs_shape: Sequence[int] = (4,), obs_dtype: str = "float32", step_us: float = 0,
                 jitter_us: float = 0, episode_len: int = 1000, copy_obs: bool = False,
                 render_mode: str | None = None):
        shape = tuple(int(d) for d in (obs_shape if isinstance(obs_shape, (tuple, list)) else (obs_shape,)))
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"obs_shape must be a non-empty tuple of positive ints, got {obs_shape!r}")
        if obs_dtype not in OBS_DTYPES:
            raise ValueError(f"obs_dtype must be one of {OBS_DTYPES}, got {obs_dtype!r}")
        if step_us < 0 or jitter_us < 0:
            raise ValueError(f"step_us and jitter_us must be >= 0, got {step_us!r} and {jitter_us!r}")
        if int(episode_len) < 1:
            raise ValueError(f"episode_len must be a positive int, got {episode_len!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.seed_mark = 0
        self.obs_shape, self.obs_dtype = shape, obs_dtype
        self.step_us, self.jitter_us, self.episode_len = float(step_us), float(jitter_us), int(episode_len)
        self.copy_obs = bool(copy_obs)
        if obs_dtype == "uint8":
            self.observation_space = spaces.Box(0, 255, shape, np.uint8)
            self._scale = 1
        else:
            self.observation_space = spaces.Box(0.0, 1.0, shape, np.float32)
            self._scale = 1.0 / 255.0
        self.action_space = spaces.Discrete(4)
        self._buffers = (np.zeros(shape, dtype=obs_dtype), np.zeros(shape, dtype=obs_dtype))
        self._marks = min(8, self._buffers[0].size)
        self.t = 0
        self._calls = 0  # reset and step calls: picks the buffer
        #: nanoseconds busy-waited by the last step (0 before any step)
        self.last_step_ns = 0

    def _stamp(self) -> np.ndarray:
        # A few values change per step, inside the Box bounds of either dtype.
        self._calls += 1
        obs = self._buffers[self._calls & 1]
        obs.reshape(-1)[: self._marks] = ((self.t + np.arange(self._marks)) % 256) * self._scale
        return obs.copy() if self.copy_obs else obs

    def _step_ns(self) -> int:
        if self.jitter_us > 0:
            lo = max(0.0, self.step_us - self.jitter_us)
            us = self.np_random.uniform(lo, self.step_us + self.jitter_us)
        else:
            us = self.step_us
        return int(us * 1000)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        if seed is not None:
            self.seed_mark = seed % 256
        return self._stamp(), {}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[..., 0] = self.t % 256
        frame[..., 1] = self.seed_mark
        frame[..., 2] = 200
        return frame

    def step(self, action):
        start = time.perf_counter_ns()
        ns = self._step_ns()
        reward = 1.0 if int(action) == self.t % 4 else 0.0
        self.t += 1
        obs = self._stamp()
        if ns:  # the step's own work counts: the whole step takes step_us
            _busy_wait_until_ns(start + ns)
        self.last_step_ns = ns
        return obs, reward, False, self.t >= self.episode_len, {}


def register_envs() -> None:
    """Registers ``rock_vec/Synthetic-v0`` unless it is registered already."""
    if SYNTHETIC_ID not in gym.envs.registry:
        gym.register(id=SYNTHETIC_ID, entry_point=f"{__name__}:SyntheticEnv")


register_envs()
