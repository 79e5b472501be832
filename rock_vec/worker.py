"""The worker program: hosts a slice of a pool's envs and serves commands.

    python -m rock_vec.worker --segment /dev/shm/rock_vec.123.ab12 --index 3

A worker needs nothing from the learner but the segment path and its index:
the manifest in the segment says which envs it hosts, how to build them and
where every array lives. The local backend forks it from a preloaded fork
server (rock_vec.forkserver); a container runs this same module.

Commands arrive through the worker's slot (rv_worker_wait), results are
written in place into the segment, and rv_worker_done publishes them. An
exception becomes an error report in the worker's mailbox; the worker keeps
serving, so one bad call does not kill the pool.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import signal
import sys
import time
from typing import NamedTuple

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from . import codec, errors, main_module
from ._core import ffi, lib
from .actions import Actions, action_leaves
from .layout import LeafIO, leaves_of
from .segment import Segment

#: A worker leaves when the learner's heartbeat is older than this.
LEARNER_TIMEOUT_NS = 1_500_000_000
#: How often a waiting worker looks at the learner's heartbeat.
POLL_NS = 200_000_000

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
    """How a worker builds its envs, and the spaces they must have exactly
    (None: only the layout is checked, as for observation_mode='different')."""

    env_fns: list
    observation_space: gym.Space | None = None
    action_space: gym.Space | None = None


def load_env_source(seg: Segment) -> EnvSource:
    """The pool's env constructors, as the manifest describes them."""
    spec = seg.manifest["spec"]
    if spec["kind"] == "make":
        env_spec_ = gym.envs.registration.EnvSpec.from_json(json.dumps(spec["env_spec"]))
        kwargs = spec["kwargs"]
        # Import the env's module now: in the fork server, every worker then
        # shares it instead of importing its own copy after the fork.
        if isinstance(env_spec_.entry_point, str):
            gym.envs.registration.load_env_creator(env_spec_.entry_point)
        return EnvSource([lambda: gym.make(env_spec_, **kwargs)] * seg.manifest["num_envs"])
    blob = seg.arrays["spec"]
    return EnvSource(**cloudpickle.loads(blob[: spec["length"]].tobytes()))


class Output:
    """Where an env's results go: the step arrays (a row per env) or the
    async ring (a row per finished step, claimed by the worker)."""

    def __init__(self, arrays: dict, prefix: str, obs_space, obs_leaves):
        self.obs = LeafIO(obs_space, obs_leaves, arrays, f"{prefix}obs")
        self.final_obs = LeafIO(obs_space, obs_leaves, arrays, f"{prefix}fobs")
        self.rew, self.term, self.trunc = arrays[f"{prefix}rew"], arrays[f"{prefix}term"], arrays[f"{prefix}trunc"]
        self.info, self.info_len = arrays[f"{prefix}info"], arrays[f"{prefix}info.len"]

    def write_info(self, row: int, infos: list, env: int) -> None:
        if not any(infos):
            self.info_len[row] = 0
            return
        self.info_len[row] = codec.encode_into(infos, self.info[row], 0, what=f"info of env {env}")


class Worker:
    """Serves one worker slot of a segment until told to close."""

    def __init__(self, seg: Segment, index: int, source: EnvSource | None = None):
        self.seg, self.index = seg, index
        self.header, self.slot = seg.header, seg.slot(index)
        self.slot.pid = os.getpid()
        man = seg.manifest
        self.lo, self.hi = man["workers"][index]
        self.spin_ns = man["worker_spin_ns"]
        self.mode = AutoresetMode(man["autoreset_mode"])
        a = seg.arrays
        self.mailbox = a["mailbox"][index]
        self.batch = man["batch_size"]
        self.rows = a["a.env_id"].shape[0]
        self.env_id, self.err = a["a.env_id"], a["a.err"]
        self.fills = ffi.cast("uint32_t *", ffi.from_buffer(a["a.fill"]))
        self.ring = ffi.cast("rv_spsc_ring_t *", ffi.from_buffer(a["rings"][index]))
        self.popped = ffi.new("uint64_t[]", max(1, self.hi - self.lo))
        self.envs: list = []
        self.source = source
        self.autoreset = np.zeros(self.hi - self.lo, dtype=bool)

    # ---- life ----

    def serve(self) -> int:
        seq = self.slot.cmd_seq  # 0 for a new pool; a replacement takes over where the dead one stopped
        self._finish(seq, self._guard(self._start, "while creating its envs"))
        seq_out = ffi.new("uint32_t *")
        handlers = {
            lib.RV_CMD_STEP: (self._step, "during step"),
            lib.RV_CMD_RESET: (self._reset, "during reset"),
            lib.RV_CMD_CALL: (self._call, "during call"),
            lib.RV_CMD_CLOSE: (self._close, "during close"),
            lib.RV_CMD_DRAIN: (self._drain, "during send"),
        }
        gap_ns = 0  # smoothed time between finishing a command and the next one
        while True:
            # Spin only while the learner has lately come back within the spin
            # budget (a benchmark loop); a learner busy for milliseconds on its
            # policy would only lose CPU time to a spinning worker.
            spin = self.spin_ns if gap_ns < self.spin_ns else 0
            idle_since = time.perf_counter_ns()
            rc = lib.rv_worker_wait(self.slot, seq, spin, POLL_NS, seq_out)
            if rc == lib.RV_TIMEOUT:
                gap_ns = POLL_NS
                if self._learner_gone():
                    self._close()
                    return 0
                continue
            commands, seq = (seq_out[0] - seq) & 0xFFFFFFFF, seq_out[0]
            cmd = self.slot.cmd
            handler, context = handlers.get(cmd, (self._unknown, "on an unknown command"))
            started = time.perf_counter_ns()
            gap_ns = (3 * gap_ns + started - idle_since) >> 2
            self._finish(seq, self._guard(handler, context), commands)
            self.slot.busy_ns += time.perf_counter_ns() - started
            if cmd == lib.RV_CMD_CLOSE:
                return 0

    def _guard(self, handler, context: str) -> tuple[int, int]:
        """Runs a handler; returns (status, reply_len)."""
        self._env_index = None
        try:
            return lib.RV_STATUS_OK, handler() or 0
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the learner
            where = f"in env {self._env_index}" if self._env_index is not None else "in worker"
            report = errors.encode_exception(
                exc, f"{where} {context} (worker {self.index}, pid {os.getpid()})"
            )
            return lib.RV_STATUS_ERROR, errors.report_into(report, self.mailbox)

    def _finish(self, seq: int, outcome: tuple[int, int], commands: int = 1) -> None:
        # `commands` > 1 when doorbells of several async sends arrived at once.
        lib.rv_worker_done(self.header, self.slot, seq, outcome[0], outcome[1], commands)

    def _reply(self, value, what: str = "reply") -> int:
        return codec.encode_into(value, self.mailbox, 0, what=what)

    def _learner_gone(self) -> bool:
        beat = self.header.learner_heartbeat_ns
        return lib.rv_now_ns() - beat > LEARNER_TIMEOUT_NS

    # ---- commands ----

    def _start(self) -> int:
        man = self.seg.manifest
        notice = main_module.run(man.get("main"))  # already run in a worker forked from the fork server
        source = self.source if self.source is not None else load_env_source(self.seg)
        for i in range(self.lo, self.hi):
            self._env_index = i
            self.envs.append(source.env_fns[i]())
        self._env_index = None
        obs_space, act_space = self.envs[0].observation_space, self.envs[0].action_space
        for j, env in enumerate(self.envs):
            self._env_index = self.lo + j
            if source.observation_space is not None and env.observation_space != source.observation_space:
                raise RuntimeError(  # gymnasium's words, which code may match on
                    "AsyncVectorEnv(..., observation_mode='same') however the sub-environments observation spaces "
                    f"are not equivalent. single_observation_space={source.observation_space}, sub-environment "
                    f"{self._env_index} observation_space={env.observation_space}. If this is intentional, use "
                    "`observation_mode='different'` instead.")
            if source.action_space is not None and env.action_space != source.action_space:
                raise RuntimeError(
                    f"env {self._env_index} has action space {env.action_space}, different from "
                    f"`{source.action_space}`. In order to batch actions, the action spaces from all "
                    "environments must be equal.")
            self._check_layout("observation", env.observation_space,
                               leaves_of(env.observation_space, man["codec_bytes"]), man["obs_leaves"])
            self._check_layout("action", env.action_space,
                               action_leaves(env.action_space, man["codec_bytes"]), man["act_leaves"])
        self._env_index = None
        obs_leaves = leaves_of(obs_space, man["codec_bytes"])
        self.out = Output(self.seg.arrays, "", obs_space, obs_leaves)
        self.async_out = Output(self.seg.arrays, "a.", obs_space, obs_leaves)
        self.actions = Actions(act_space, action_leaves(act_space, man["codec_bytes"]), self.seg.arrays,
                               man["num_envs"])
        if self.slot.restarts:
            self._stand_in()
        self.slot.state = lib.RV_WORKER_READY
        return self._reply({"notice": notice}) if notice else 0

    def _stand_in(self) -> None:
        """A replacement for a dead worker: its envs restart, and the step
        the old worker never finished reports them truncated."""
        for j, env in enumerate(self.envs):
            i = self.lo + j
            self._env_index = i
            obs, info = env.reset()
            infos = [dict(info, worker_restarted=True)]
            if self.mode is AutoresetMode.SAME_STEP:  # a truncation there carries a final obs: the fresh one
                infos = [{"worker_restarted": True}, info]
            same_step = self.mode is AutoresetMode.SAME_STEP
            self._write(self.out, i, i, (obs, 0.0, False, True, infos, obs if same_step else None))
            # NEXT_STEP: the next step returns a fresh episode's first obs, as after any truncation.
            self.autoreset[j] = self.mode is AutoresetMode.NEXT_STEP
        self._env_index = None

    def _check_layout(self, what: str, space, leaves: list, expected: list) -> None:
        if [[list(leaf.path), leaf.kind, leaf.dtype, list(leaf.shape)] for leaf in leaves] != expected:
            raise RuntimeError(
                f"env {self._env_index} has {what} space {space}, whose layout differs from the "
                f"pool's (every env of a pool needs the same {what} space shapes and dtypes)"
            )

    def _advance(self, j: int, i: int) -> tuple:
        """Steps env ``i`` (the worker's ``j``-th) with its action and runs
        autoreset as SyncVectorEnv does; returns (obs, reward, terminated,
        truncated, infos, final obs). SAME_STEP, for an env that ended:
        infos is [its last info, its reset info] and the final obs (kept
        apart from the codec, in the fobs arrays) is set."""
        env, mode = self.envs[j], self.mode
        if mode is AutoresetMode.NEXT_STEP:
            if self.autoreset[j]:
                obs, info = env.reset()
                self.autoreset[j] = False
                return obs, 0.0, False, False, [info], None
            obs, rew, te, tr, info = env.step(self.actions.read_one(i))
            self.autoreset[j] = te or tr
            return obs, rew, te, tr, [info], None
        if mode is AutoresetMode.SAME_STEP:
            obs, rew, te, tr, info = env.step(self.actions.read_one(i))
            if te or tr:
                # Copied before reset: an env may reuse its observation buffer.
                final = copy.deepcopy(obs)
                obs, reset_info = env.reset()
                return obs, rew, te, tr, [info, reset_info], final
            return obs, rew, te, tr, [info], None
        # DISABLED: the learner resets done envs itself
        if self.autoreset[j]:
            raise AssertionError(
                f"env {i} was stepped after it ended; with autoreset_mode=DISABLED reset it "
                "first (reset(options={'reset_mask': ...}))")
        obs, rew, te, tr, info = env.step(self.actions.read_one(i))
        self.autoreset[j] = te or tr
        return obs, rew, te, tr, [info], None

    @staticmethod
    def _write(out: Output, row: int, i: int, result: tuple) -> None:
        obs, out.rew[row], out.term[row], out.trunc[row], infos, final = result
        out.obs.write_one(row, obs)
        if final is not None:
            # Leaves the fixed arrays would not give back as the env returned
            # them (a Python int, another dtype) travel after the two infos.
            others = out.final_obs.write_exact(row, final)
            if others:
                infos = [*infos, others]
        out.write_info(row, infos, i)

    def _step(self) -> int:
        out, lo, advance, write = self.out, self.lo, self._advance, self._write
        for j in range(len(self.envs)):
            self._env_index = i = lo + j
            write(out, i, i, advance(j, i))
        self.slot.env_steps += len(self.envs)
        return 0

    def _drain(self) -> int:
        """Steps every env id queued in this worker's ring (async sends);
        each result goes to a freshly claimed row of the output ring."""
        while n := lib.rv_spsc_ring_pop(self.ring, self.popped, len(self.popped)):
            for k in range(n):
                i = self.popped[k]
                self._to_row(i, lambda i=i: self._advance(i - self.lo, i))
            self.slot.env_steps += n
        return 0

    def _to_row(self, i: int, produce) -> None:
        """Runs ``produce() -> result`` for env ``i``, then claims the next
        output row (so rows fill in finishing order: a slow env never holds
        up a batch it is not in) and writes the result, or the error report
        if ``produce`` raised. Every claimed row is filled: blocks fill up."""
        try:
            result, error = produce(), None
        except Exception as exc:  # goes back in the row; the other envs go on
            result = None
            error = errors.encode_exception(exc, f"in env {i} during send (worker {self.index}, pid {os.getpid()})")
        row = lib.rv_claim_row(self.header, self.rows)
        self.env_id[row] = i
        try:
            if error is None:
                self._write(self.async_out, row, i, result)
        except Exception as exc:  # an info that does not fit its slot, say
            error = errors.encode_exception(exc, f"in env {i} during send (worker {self.index}, pid {os.getpid()})")
        if error is not None:
            self.async_out.info_len[row] = errors.report_into(error, self.async_out.info[row])
        self.err[row] = error is not None
        lib.rv_row_done(self.header, self.fills, row, self.batch)

    def _request(self):
        return cloudpickle.loads(self.mailbox[: self.slot.cmd_len].tobytes())

    def _reset(self) -> int:
        req = self._request()
        seeds, options, mask = req["seeds"], req["options"], req["mask"]
        for j, env in enumerate(self.envs):
            i = self.lo + j
            if mask is not None and not mask[j]:
                self.out.info_len[i] = 0
                continue
            self._env_index = i
            if req.get("rows"):  # async_reset: the results go to the output ring
                self._to_row(i, lambda j=j: self._reset_one(j, seeds[j], options[j]))
            else:
                self._write(self.out, i, i, self._reset_one(j, seeds[j], options[j]))
        return 0

    def _reset_one(self, j: int, seed, options) -> tuple:
        obs, info = self.envs[j].reset(seed=seed, options=options)
        self.autoreset[j] = False
        return obs, 0.0, False, False, [info], None

    def _call(self) -> int:
        """call / get_attr / set_attr / is_wrapped on this worker's envs
        (``req["envs"]``: the global indices to touch, None for all)."""
        req = self._request()
        op, name = req["op"], req["name"]
        envs = range(self.lo, self.hi) if req.get("envs") is None else req["envs"]
        results = []
        for k, i in enumerate(envs):
            self._env_index = i
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
        self._env_index = None
        if not results:
            return 0
        return self._reply(results, what=f"the results of {op}({name!r}) per env")

    def _close(self) -> int:
        first = None
        for env in self.envs:
            try:
                env.close()
            except Exception as exc:  # close the others anyway
                first = first or exc
        self.envs = []
        if first is not None:
            raise first
        return 0

    def _unknown(self) -> int:
        raise RuntimeError(f"unknown command {self.slot.cmd}")


def _is_wrapped(env, wrapper_class) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper_class):
            return True
        env = env.env
    return False


def run(segment_path: str, index: int, source: EnvSource | None = None) -> int:
    """Attaches to a segment and serves worker ``index`` until closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the learner's to handle
    seg = Segment.attach(segment_path)
    return Worker(seg, index, source).serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rock_vec.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--segment", required=True, help="path of the pool's segment")
    parser.add_argument("--index", required=True, type=int, help="this worker's slot")
    args = parser.parse_args(argv)
    return run(args.segment, args.index)


if __name__ == "__main__":
    sys.exit(main())
