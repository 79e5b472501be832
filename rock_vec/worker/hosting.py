"""Hosting a slice of a pool's envs: build them, step them with autoreset
exactly as SyncVectorEnv does, and write their results into the segment.

An ``EnvHost`` serves envs ``lo..hi-1``. The worker program runs one behind
its slot (``rock_vec.worker``); the learner runs one for the envs it steps
in its own process (``learner_envs``, see ``rock_vec.engine.split``). Either way
the results land in the same rows of the same arrays, so the learner reads
every env alike.
"""

from __future__ import annotations

import copy
import importlib
import json
from typing import NamedTuple

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from .. import errors
from .._core import ffi, lib
from ..segment import codec
from ..segment.actions import Actions, action_leaves
from ..segment.layout import LeafIO, leaves_of
from .frames import FrameServer

#: Names that ``call`` refuses (gymnasium's list: use the methods themselves).
FORBIDDEN_CALLS = ("reset", "step", "close", "_setattr", "_check_spaces")


def env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """gymnasium's spec of ``env_id``, also for ``"module:Env-v0"`` ids (the
    module is imported first, as ``gymnasium.make`` does).

    Raises:
        gymnasium.error.Error: if the id is not registered.
    """
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        importlib.import_module(module)
    return gym.spec(env_id)


class EnvSource(NamedTuple):
    """How a host builds its envs, and the spaces they must have exactly
    (None: only the layout is checked, as for observation_mode='different')."""

    env_fns: list
    observation_space: gym.Space | None = None
    action_space: gym.Space | None = None


def make_source(spec: dict, num_envs: int) -> EnvSource:
    """Env constructors from a JSON spec (``{"kind": "make", ...}``)."""
    env_spec_ = gym.envs.registration.EnvSpec.from_json(json.dumps(spec["env_spec"]))
    kwargs = spec["kwargs"]
    # Import the env's module now: in the fork server, every worker then
    # shares it instead of importing its own copy after the fork.
    if isinstance(env_spec_.entry_point, str):
        gym.envs.registration.load_env_creator(env_spec_.entry_point)
    return EnvSource([lambda: gym.make(env_spec_, **kwargs)] * num_envs)


def load_env_source(seg) -> EnvSource:
    """A worker's env constructors, as the segment's manifest describes them.
    (The learner never calls this: it does not unpickle the segment.)"""
    spec = seg.manifest["spec"]
    if spec["kind"] == "make":
        return make_source(spec, seg.manifest["num_envs"])
    blob = seg.arrays["spec"]
    return EnvSource(**cloudpickle.loads(blob[: spec["length"]].tobytes()))


class ResultArrays:
    """Where an env's results go: the step arrays (a row per env; one
    generation of their observations) or the async ring (a row per finished
    step, claimed by its host)."""

    def __init__(self, arrays: dict, prefix: str, obs_space, obs_leaves, generation: int | None = None):
        self.obs = LeafIO(obs_space, obs_leaves, arrays, f"{prefix}obs", generation)
        self.final_obs = LeafIO(obs_space, obs_leaves, arrays, f"{prefix}fobs")
        self.rew, self.term, self.trunc = arrays[f"{prefix}rew"], arrays[f"{prefix}term"], arrays[f"{prefix}trunc"]
        self.info, self.info_len = arrays[f"{prefix}info"], arrays[f"{prefix}info.len"]

    def write(self, row: int, env: int, result: tuple) -> None:
        """Writes one env's result (see ``EnvHost.advance``) into ``row``."""
        obs, self.rew[row], self.term[row], self.trunc[row], infos, final = result
        self.obs.write_one(row, obs)
        if final is not None:
            # Leaves the fixed arrays would not give back as the env returned
            # them (a Python int, another dtype) travel after the two infos.
            aside = self.final_obs.write_exact(row, final)
            if aside is not None:
                infos = [*infos, aside]
        if not any(infos):
            self.info_len[row] = 0
        else:
            self.info_len[row] = codec.encode_into(infos, self.info[row], 0, what=f"info of env {env}")


class EnvHost:
    """Envs ``lo..hi-1`` of a pool, and everything done to them.

    Args:
        seg: the pool's segment (its header, manifest and arrays).
        lo, hi: the env indices hosted.
        source: how to build them.
        where: the host, for error reports ("worker 3, pid 123").

    Every method raises what the envs raise; ``env_index`` then names the
    env that was being handled (None outside any env).
    """

    def __init__(self, seg, lo: int, hi: int, source: EnvSource, where: str):
        man = seg.manifest
        self.seg, self.lo, self.hi, self.source, self.where = seg, lo, hi, source, where
        self.mode = AutoresetMode(man["autoreset_mode"])
        self.header = seg.header
        a = seg.arrays
        self.batch = man["batch_size"]
        self.rows = a["a.env_id"].shape[0]
        self.env_id, self.err = a["a.env_id"], a["a.err"]
        self.fills = ffi.cast("uint32_t *", ffi.from_buffer(a["a.fill"]))
        self.envs: list = []
        self.autoreset = [False] * (hi - lo)  # each env's next step is its reset (NEXT_STEP, DISABLED)
        # Each env's last observation, as the env returned it: a masked reset
        # writes it again into the generation it targets (rock_vec.engine.handouts).
        self.last_obs: list = [None] * (hi - lo)
        self.generation = a["obs.gen"]
        self.env_index: int | None = None
        # The running episode of each env, in Python floats (cheap per step);
        # the segment's monitor counters are written only when one ends.
        self.ep_return = [0.0] * (hi - lo)
        self.ep_length = [0] * (hi - lo)
        self.episodes, self.last_return, self.last_length = a["m.episodes"], a["m.last_return"], a["m.last_length"]
        self.frames = FrameServer(a, lo, hi)  # rock-vec watch's requests, answered between steps

    # ---- building ----

    def start(self) -> None:
        """Builds the envs and checks their spaces against the pool's."""
        man = self.seg.manifest
        source = self.source
        for i in range(self.lo, self.hi):
            self.env_index = i
            self.envs.append(source.env_fns[i]())
        self.env_index = None
        obs_space, act_space = self.envs[0].observation_space, self.envs[0].action_space
        for j, env in enumerate(self.envs):
            self.env_index = self.lo + j
            if source.observation_space is not None and env.observation_space != source.observation_space:
                raise RuntimeError(  # gymnasium's words, which code may match on
                    "AsyncVectorEnv(..., observation_mode='same') however the sub-environments observation spaces "
                    f"are not equivalent. single_observation_space={source.observation_space}, sub-environment "
                    f"{self.env_index} observation_space={env.observation_space}. If this is intentional, use "
                    "`observation_mode='different'` instead.")
            if source.action_space is not None and env.action_space != source.action_space:
                raise RuntimeError(
                    f"env {self.env_index} has action space {env.action_space}, different from "
                    f"`{source.action_space}`. In order to batch actions, the action spaces from all "
                    "environments must be equal.")
            self._check_layout("observation", env.observation_space,
                               leaves_of(env.observation_space, man["codec_bytes"]), man["obs_leaves"])
            self._check_layout("action", env.action_space,
                               action_leaves(env.action_space, man["codec_bytes"]), man["act_leaves"])
        self.env_index = None
        obs_leaves = leaves_of(obs_space, man["codec_bytes"])
        self.outs = [ResultArrays(self.seg.arrays, "", obs_space, obs_leaves, g)
                     for g in range(man["obs_generations"])]
        self.async_out = ResultArrays(self.seg.arrays, "a.", obs_space, obs_leaves)
        self.actions = Actions(act_space, action_leaves(act_space, man["codec_bytes"]), self.seg.arrays,
                               man["num_envs"])

    def _check_layout(self, what: str, space, leaves: list, expected: list) -> None:
        if [[list(leaf.path), leaf.kind, leaf.dtype, list(leaf.shape)] for leaf in leaves] != expected:
            raise RuntimeError(
                f"env {self.env_index} has {what} space {space}, whose layout differs from the "
                f"pool's (every env of a pool needs the same {what} space shapes and dtypes)"
            )

    @property
    def out(self) -> ResultArrays:
        """The step arrays, with the generation of observations the command
        being served writes (the learner names it in ``obs.gen``)."""
        g = int(self.generation[0])
        if g >= len(self.outs):
            raise ValueError(f"obs.gen names generation {g} of {len(self.outs)}: the segment was written over")
        return self.outs[g]

    def _put(self, out: ResultArrays, i: int, result: tuple) -> None:
        """Writes env ``i``'s step or reset ``result`` into its row of ``out``."""
        self.last_obs[i - self.lo] = result[0]
        out.write(i, i, result)

    def restart_as_truncated(self) -> None:
        """For a replacement of a dead worker: its envs restart, and the step
        the old worker never finished reports them truncated."""
        same_step = self.mode is AutoresetMode.SAME_STEP
        out = self.out
        for j, env in enumerate(self.envs):
            i = self.env_index = self.lo + j
            obs, info = env.reset()
            infos = [dict(info, worker_restarted=True)]
            if same_step:  # a truncation there carries a final obs: the fresh one
                infos = [{"worker_restarted": True}, info]
            self._put(out, i, (obs, 0.0, False, True, infos, obs if same_step else None))
            # NEXT_STEP: the next step returns a fresh episode's first obs, as after any truncation.
            self.autoreset[j] = self.mode is AutoresetMode.NEXT_STEP
        self.env_index = None

    # ---- stepping ----

    def advance(self, i: int) -> tuple:
        """Steps env ``i`` with its action and runs autoreset as
        SyncVectorEnv does; returns (obs, reward, terminated, truncated,
        infos, final obs). NEXT_STEP: the step after an env ended is its
        reset. SAME_STEP: an env that ends is reset at once; infos is [its
        last info, its reset info] and the final obs is set. DISABLED: the
        learner resets ended envs itself."""
        j = i - self.lo
        env = self.envs[j]
        if self.autoreset[j]:
            if self.mode is AutoresetMode.DISABLED:
                raise AssertionError(
                    f"env {i} was stepped after it ended; with autoreset_mode=DISABLED reset it "
                    "first (reset(options={'reset_mask': ...}))")
            obs, info = env.reset()
            self.autoreset[j] = False
            return obs, 0.0, False, False, [info], None
        obs, rew, te, tr, info = env.step(self.actions.read_one(i))
        self.ep_return[j] += float(rew)
        self.ep_length[j] += 1
        if te or tr:
            return self._ended(i, j, obs, rew, te, tr, info)
        return obs, rew, te, tr, [info], None

    def _ended(self, i: int, j: int, obs, rew, te, tr, info) -> tuple:
        """``advance``'s result for env ``i`` (the ``j``-th hosted), whose
        step just ended its episode: its reset comes now (SAME_STEP) or
        with its next step."""
        self._episode_ended(i, j)
        if self.mode is AutoresetMode.SAME_STEP:
            final = copy.deepcopy(obs)  # before reset: an env may reuse its observation buffer
            obs, reset_info = self.envs[j].reset()
            return obs, rew, te, tr, [info, reset_info], final
        self.autoreset[j] = True
        return obs, rew, te, tr, [info], None

    def _episode_ended(self, i: int, j: int) -> None:
        """Publishes env ``i``'s finished episode for monitors (the count last:
        a reader that sees it grow reads this episode's return and length)."""
        self.last_return[i] = self.ep_return[j]
        self.last_length[i] = self.ep_length[j]
        self.episodes[i] += 1
        self.ep_return[j], self.ep_length[j] = 0.0, 0

    def step(self) -> int:
        """Steps every hosted env; returns how many.

        The loop is ``advance`` and ``ResultArrays.write`` inlined for an
        env that goes on (most steps of most envs): on a cold CPU (after the
        learner's policy forward) every call and temporary there costs
        again per env. An env that ended, or whose next step is its reset,
        takes the general path."""
        lo, out = self.lo, self.out
        obs = out.obs
        rew, term, trunc, info, info_len = out.rew, out.term, out.trunc, out.info, out.info_len
        single = obs.single and obs.simple
        obs_array = obs.arrays[0]
        read_action, autoreset, last_obs = self.actions.read_one, self.autoreset, self.last_obs
        ep_return, ep_length = self.ep_return, self.ep_length
        i = lo
        try:
            for j, env in enumerate(self.envs):
                i = lo + j
                if autoreset[j]:
                    self._put(out, i, self.advance(i))
                    continue
                o, r, te, tr, inf = env.step(read_action(i))
                ep_return[j] += float(r)
                ep_length[j] += 1
                if te or tr:
                    self._put(out, i, self._ended(i, j, o, r, te, tr, inf))
                    continue
                last_obs[j] = o
                if single:
                    obs_array[i] = o
                else:
                    obs.write_one(i, o)
                rew[i], term[i], trunc[i] = r, te, tr
                info_len[i] = codec.encode_into([inf], info[i], 0, what=f"info of env {i}") if inf else 0
        except BaseException:
            self.env_index = i  # the env every error report names
            raise
        self.env_index = None
        if self.frames.pending():
            self.frames.serve(self.envs)
        return self.hi - lo

    def step_to_row(self, i: int) -> None:
        """Steps env ``i`` (an async send); its result goes to a row of the
        output ring (see ``to_row``)."""
        self.to_row(i, lambda: self.advance(i))
        if self.frames.pending():
            self.frames.serve(self.envs)

    def to_row(self, i: int, produce) -> None:
        """Runs ``produce() -> result`` for env ``i``, then claims the next
        output row (so rows fill in finishing order: a slow env never holds
        up a batch it is not in) and writes the result, or the error report
        if ``produce`` raised. Every claimed row is filled: blocks fill up."""
        try:
            result, error = produce(), None
            self.last_obs[i - self.lo] = result[0]
        except Exception as exc:  # goes back in the row; the other envs go on
            result = None
            error = errors.encode_exception(exc, f"in env {i} during send ({self.where})")
        row = lib.rv_claim_row(self.header, self.rows)
        self.env_id[row] = i
        try:
            if error is None:
                self.async_out.write(row, i, result)
        except Exception as exc:  # an info that does not fit its slot, say
            error = errors.encode_exception(exc, f"in env {i} during send ({self.where})")
        if error is not None:
            self.async_out.info_len[row] = errors.report_into(error, self.async_out.info[row])
        self.err[row] = error is not None
        lib.rv_row_done(self.header, self.fills, row, self.batch)

    # ---- other commands ----

    def reset(self, req: dict) -> None:
        """Resets the hosted envs ``req["mask"]`` selects (all when None),
        each with its seed and options; with ``req["rows"]`` (async_reset)
        the results go to the output ring. With ``req["rewrite"]`` the other
        envs' last observations are written again (into the generation this
        reset targets, as SyncVectorEnv concatenates them anew)."""
        seeds, options, mask = req["seeds"], req["options"], req["mask"]
        out = self.out
        for j, env in enumerate(self.envs):
            i = self.lo + j
            if mask is not None and not mask[j]:
                out.info_len[i] = 0
                if req.get("rewrite") and self.last_obs[j] is not None:
                    self.env_index = i
                    out.obs.write_one(i, self.last_obs[j])
                continue
            self.env_index = i
            if req["rows"]:
                self.to_row(i, lambda j=j: self._reset_one(j, seeds[j], options[j]))
            else:
                self._put(out, i, self._reset_one(j, seeds[j], options[j]))
        self.env_index = None

    def _reset_one(self, j: int, seed, options) -> tuple:
        obs, info = self.envs[j].reset(seed=seed, options=options)
        self.autoreset[j] = False
        self.ep_return[j], self.ep_length[j] = 0.0, 0  # a reset abandons the running episode
        return obs, 0.0, False, False, [info], None

    def call(self, req: dict) -> list:
        """call / get_attr / set_attr / is_wrapped on the hosted envs
        ``req["envs"]`` (global indices; None for all); the results of ops
        that return something, in that order."""
        op, name = req["op"], req["name"]
        if op == "restart_as_truncated":  # a pool built anew for a lost one (rock_vec.ray): every env
            self.restart_as_truncated()
            return []
        envs = range(self.lo, self.hi) if req.get("envs") is None else req["envs"]
        results = []
        for k, i in enumerate(envs):
            self.env_index = i
            env = self.envs[i - self.lo]
            if op == "call":  # gymnasium: call a method, or read an attribute
                attr = env.get_wrapper_attr(name)
                results.append(attr(*req["args"], **req["kwargs"]) if callable(attr) else attr)
            elif op == "getattr":  # SB3: the attribute as it is
                results.append(env.get_wrapper_attr(name))
            elif op == "setattr":  # gymnasium: on the wrapper or env that has it
                env.set_wrapper_attr(name, req["values"][k])
            elif op == "setattr_outer":  # SB3: on the outermost wrapper
                setattr(env, name, req["values"][k])
            elif op == "np_random":  # a Generator as plain data: its bit generator's name and state
                bits = env.get_wrapper_attr("np_random").bit_generator
                results.append([type(bits).__name__, bits.state])
            elif op == "hasattr":
                try:
                    env.get_wrapper_attr(name)
                    results.append(True)
                except AttributeError:
                    results.append(False)
            elif op == "is_wrapped":
                results.append(_is_wrapped(env, req["args"][0]))
            else:
                raise ValueError(f"unknown call op {op!r}")
        self.env_index = None
        return results

    def close(self) -> None:
        """Closes every env (all of them, even if one raises; then raises the first error)."""
        first = None
        for env in self.envs:
            try:
                env.close()
            except Exception as exc:  # close the others anyway
                first = first or exc
        self.envs = []
        if first is not None:
            raise first


def _is_wrapped(env, wrapper_class) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper_class):
            return True
        env = env.env
    return False
