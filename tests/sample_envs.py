"""Small envs the tests use: every space kind, scripted failures, slow steps.

They are importable by workers (tests/ is on sys.path, which the fork
server inherits), and deterministic given a seed.
"""

from __future__ import annotations

import collections
import copy
import os
import signal
import time

import gymnasium as gym
import numpy as np
from gymnasium import spaces


#: One of every space kind, for parametrised tests.
SPACES = {
    "box_f32": spaces.Box(-1, 1, (3,), np.float32),
    "box_u8_image": spaces.Box(0, 255, (6, 5, 3), np.uint8),
    "box_f64_scalar": spaces.Box(-2, 2, (), np.float64),
    "box_i16": spaces.Box(-100, 100, (2, 2), np.int16),
    "discrete": spaces.Discrete(5, start=-2),
    "multi_discrete": spaces.MultiDiscrete([3, 4, 2]),
    "multi_binary": spaces.MultiBinary(6),
    "text": spaces.Text(max_length=7),
    "dict": spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "id": spaces.Discrete(4)}),
    "nested": spaces.Tuple((
        spaces.Dict({"img": spaces.Box(0, 255, (3, 3), np.uint8), "txt": spaces.Text(5)}),
        spaces.MultiBinary(2),
    )),
    "sequence_codec": spaces.Sequence(spaces.Discrete(3)),
    "graph_codec": spaces.Graph(node_space=spaces.Box(0, 1, (2,)), edge_space=spaces.Discrete(2)),
}


class SpaceEnv(gym.Env):
    """Observations and actions of any given spaces; episodes of random length.

    Rewards and infos depend on the seed and the actions, so two runs agree
    only if every action reached the right env and every result came back.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, observation_space=None, action_space=None, max_len=8, info_every=1, reuse_obs=False,
                 render_mode=None):
        # Own copies: a space seeded by one env must not drive another's samples.
        self.observation_space = copy.deepcopy(observation_space or spaces.Box(-1, 1, (3,), np.float32))
        self.action_space = copy.deepcopy(action_space or spaces.Discrete(3))
        self.max_len, self.info_every, self.reuse_obs = max_len, info_every, reuse_obs
        self.render_mode = render_mode
        self.t = 0
        self.value = 0.0
        self._buffer = None

    def _obs(self):
        obs = self.observation_space.sample()
        if self.reuse_obs and isinstance(obs, np.ndarray):
            # Like some ALE/MuJoCo envs: the same array object every step.
            if self._buffer is None:
                self._buffer = obs
            self._buffer[...] = obs
            return self._buffer
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self.t = 0
        self.length = int(self.np_random.integers(1, self.max_len + 1))
        info = {"start": int(self.np_random.integers(100))}
        if options:
            info["options"] = dict(options)
        return self._obs(), info

    def step(self, action):
        assert self.action_space.contains(action), f"bad action {action!r}"
        self.t += 1
        flat = gym.spaces.flatten(self.action_space, action) if not isinstance(
            self.action_space, spaces.Text) else np.array([len(action)])
        self.value = float(np.sum(flat)) + float(self.np_random.normal())
        terminated = self.t >= self.length and self.np_random.random() < 0.5
        truncated = self.t >= self.length and not terminated
        info = {}
        if self.t % self.info_every == 0:
            info = {"t": self.t, "x": self.value, "f32": np.float32(self.value), "vec": np.arange(3) * self.t}
            if self.t % 3 == 0:
                info["sometimes"] = "yes"
        return self._obs(), self.value, terminated, truncated, info

    def render(self):
        return np.full((4, 6, 3), self.t, dtype=np.uint8)

    def echo(self, *args, **kwargs):
        return {"args": list(args), "kwargs": kwargs, "t": self.t}


class FailingEnv(gym.Env):
    """Raises, crashes or exits on a chosen step of a chosen env."""

    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, index=0, fail_index=0, fail_step=3, how="raise", step_seconds=0.0):
        self.index, self.fail_index, self.fail_step, self.how = index, fail_index, fail_step, how
        self.step_seconds = step_seconds
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.step_seconds:
            time.sleep(self.step_seconds)
        if self.index == self.fail_index and self.t == self.fail_step:
            if self.how == "raise":
                raise KeyError(f"boom in env {self.index}")
            if self.how == "segfault":
                os.kill(os.getpid(), signal.SIGSEGV)
            if self.how == "exit":
                os._exit(7)
            if self.how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "hang":
                time.sleep(3600)
            if self.how == "huge_info":  # more than a pool's 4096 info bytes
                return np.full(2, self.t, np.float32), 1.0, False, False, {"blob": "x" * 10_000}
            if self.how == "bad_obs":  # not the observation space's shape
                return np.zeros(3, np.float32), 1.0, False, False, {}
        return np.full(2, self.t, np.float32), 1.0, False, False, {}


class BusyEnv(gym.Env):
    """Steps take a fixed wall time of busy CPU (no sleeping)."""

    observation_space = spaces.Box(0, 1, (4,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, step_us=100.0):
        self.step_s = step_us / 1e6

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        end = time.perf_counter() + self.step_s
        while time.perf_counter() < end:
            pass
        return np.zeros(4, np.float32), 1.0, False, False, {}


class HungryEnv(gym.Env):
    """Moves its own process into a memory cgroup, then eats memory on step 2."""

    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, cgroup: str = "", eat_mib: int = 0):
        self.cgroup, self.eat_mib, self.t, self.food = cgroup, eat_mib, 0, []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.cgroup and self.eat_mib:
            with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t == 2 and self.eat_mib:
            self.food.append(np.ones(self.eat_mib << 20, np.uint8))
        return np.zeros(2, np.float32), 0.0, False, False, {}


class RecorderEnv(gym.Env):
    """Keeps the last action it was given, as it was given (for
    ``get_attr("last_action")``), and judges actions itself: in its
    ``Discrete(4)`` an action 4 ends the episode; ``reject`` makes it raise
    on any action its space does not contain."""

    def __init__(self, action_space=None, reject=False):
        self.action_space = action_space or spaces.Discrete(4)
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.reject, self.last_action = reject, None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.last_action = action
        if self.reject and action not in self.action_space:
            raise ValueError(f"RecorderEnv cannot take the action {action!r}")
        ended = isinstance(self.action_space, spaces.Discrete) and not self.reject and action == 4
        return np.ones(2, np.float32), 0.0, bool(ended), False, {}


Point = collections.namedtuple("Point", "x y")


class PlainObsEnv(gym.Env):
    """Returns observations in the env's own types, not the space's: a
    Python int for a Discrete, an OrderedDict in another key order for a
    Dict, float64 arrays for a float32 Box, a named tuple for a Tuple.
    SyncVectorEnv hands SAME_STEP final observations over as they are."""

    metadata = {}

    def __init__(self, kind="int"):
        self.kind = kind
        self.observation_space = {
            "int": spaces.Discrete(5),
            "odict": spaces.Dict({"a": spaces.Box(0, 1, (3,), np.float32), "b": spaces.Discrete(3)}),
            "float64": spaces.Box(0, 1, (2, 2), np.float32),
            "namedtuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(0, 1, (2,), np.float32))),
        }[kind]
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        t = self.t
        if self.kind == "int":
            return t % 5
        if self.kind == "odict":
            return collections.OrderedDict([("b", t % 3), ("a", np.full(3, t / 10, np.float32))])
        if self.kind == "float64":
            return np.full((2, 2), t / 7)
        return Point(np.int64(t % 3), np.full(2, t / 9, np.float32))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(self.t), self.t % 3 == 0, False, {}


class ScribbleEnv(gym.Env):
    """A hostile env: on step ``when`` it writes random bytes over part of
    its pool's shared segment, found through /proc/self/maps as any code in
    a worker could find it. ``what``: "all", "header", "counters" (the
    header's completion, fault and async lines), "own_slot", "own_rows"
    (its own rows of every per-env array), "other_rows" (env 0's rows) or
    "rings" (every worker's ring of env ids)."""

    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, index=0, what="all", when=2, hostile=True):
        self.index, self.what, self.when, self.hostile, self.t = index, what, when, hostile, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.hostile and self.t == self.when:
            self._scribble()
        return np.full(2, 0.5, np.float32), 1.0, False, False, {"t": self.t}

    def _segment(self):
        import ctypes
        import json
        import struct

        for line in open("/proc/self/maps"):
            if "/dev/shm/rock_vec." in line or "/rock_vec/segment" in line:  # a process's, a container's
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                head = ctypes.string_at(lo, 64)
                (_, _, header_size, total, num_envs, num_workers, workers_off, manifest_off,
                 manifest_len) = struct.unpack_from("<QIIQIIQQQ", head)
                manifest = json.loads(ctypes.string_at(lo + manifest_off, manifest_len))
                return lo, hi - lo, header_size, num_envs, workers_off, manifest
        raise RuntimeError("no rock_vec segment is mapped in this process")

    def _scribble(self):
        import ctypes

        base, size, header_size, num_envs, workers_off, manifest = self._segment()
        rng = np.random.default_rng(self.index)
        regions = []
        if self.what == "all":
            regions = [(0, size)]
        elif self.what == "header":
            regions = [(0, header_size)]
        elif self.what == "counters":
            regions = [(128, header_size - 128)]
        elif self.what == "own_slot":
            worker = next(w for w, (lo, hi) in enumerate(manifest["workers"]) if lo <= self.index < hi)
            regions = [(workers_off + 192 * worker, 192)]
        elif self.what in ("own_rows", "other_rows"):
            row = self.index if self.what == "own_rows" else 0
            for a in manifest["arrays"].values():
                if a["shape"] and a["shape"][0] == num_envs:
                    width = int(np.prod(a["shape"][1:], dtype=np.int64)) * np.dtype(a["dtype"]).itemsize
                    regions.append((a["offset"] + row * width, width))
        elif self.what == "rings":
            a = manifest["arrays"]["rings"]
            regions = [(a["offset"], int(np.prod(a["shape"])))]
        for offset, length in regions:
            noise = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
            ctypes.memmove(base + offset, noise, length)


def configured_cartpole(config: dict) -> gym.Env:
    """An env creator in RLlib's convention, ``creator(env_config)``: a
    CartPole whose episodes are cut at ``config["limit"]`` steps."""
    return gym.make("CartPole-v1", max_episode_steps=config["limit"])


class DeviceEnv(gym.Env):
    """An env whose constructor takes ``device`` and ``batch_size``, names
    rock_vec's options also have; it reports what it was given."""

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, device: str = "cpu", batch_size: int = 1):
        self.device, self.batch_size = device, batch_size

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, False, False, {}


DEVICE_ENV_ID = "rock-vec-test/Device-v0"
if DEVICE_ENV_ID not in gym.registry:
    gym.register(DEVICE_ENV_ID, entry_point="sample_envs:DeviceEnv")
