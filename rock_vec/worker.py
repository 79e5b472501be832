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
import importlib
import json
import os
import signal
import sys
import time

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from . import codec, errors
from ._core import ffi, lib
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


def load_env_fns(seg: Segment) -> list:
    """The pool's env constructors, as the manifest describes them."""
    spec = seg.manifest["spec"]
    if spec["kind"] == "make":
        env_spec_ = gym.envs.registration.EnvSpec.from_json(json.dumps(spec["env_spec"]))
        kwargs = spec["kwargs"]
        # Import the env's module now: in the fork server, every worker then
        # shares it instead of importing its own copy after the fork.
        if isinstance(env_spec_.entry_point, str):
            gym.envs.registration.load_env_creator(env_spec_.entry_point)
        return [lambda: gym.make(env_spec_, **kwargs)] * seg.manifest["num_envs"]
    blob = seg.arrays["spec"]
    return cloudpickle.loads(blob[: spec["length"]].tobytes())


class Worker:
    """Serves one worker slot of a segment until told to close."""

    def __init__(self, seg: Segment, index: int, env_fns: list | None = None):
        self.seg, self.index = seg, index
        self.header, self.slot = seg.header, seg.slot(index)
        self.slot.pid = os.getpid()
        man = seg.manifest
        self.lo, self.hi = man["workers"][index]
        self.spin_ns = man["worker_spin_ns"]
        self.mode = AutoresetMode(man["autoreset_mode"])
        a = seg.arrays
        self.rew, self.term, self.trunc = a["rew"], a["term"], a["trunc"]
        self.info, self.info_len = a["info"], a["info.len"]
        self.mailbox = a["mailbox"][index]
        self.envs: list = []
        self.env_fns = env_fns
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
            seq = seq_out[0]
            cmd = self.slot.cmd
            handler, context = handlers.get(cmd, (self._unknown, "on an unknown command"))
            started = time.perf_counter_ns()
            gap_ns = (3 * gap_ns + started - idle_since) >> 2
            self._finish(seq, self._guard(handler, context))
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
            return lib.RV_STATUS_ERROR, self._reply(report)

    def _finish(self, seq: int, outcome: tuple[int, int]) -> None:
        lib.rv_worker_done(self.header, self.slot, seq, outcome[0], outcome[1])

    def _reply(self, value, what: str = "reply") -> int:
        try:
            return codec.encode_into(value, self.mailbox, 0, what=what)
        except codec.CodecError as exc:
            if isinstance(value, dict) and "traceback" in value:  # an oversized error report
                value = dict(value, traceback=value["traceback"][-2000:], args=[value["message"][:2000]])
                return codec.encode_into(value, self.mailbox, 0, what="error report")
            raise exc

    def _learner_gone(self) -> bool:
        beat = self.header.learner_heartbeat_ns
        return lib.rv_now_ns() - beat > LEARNER_TIMEOUT_NS

    # ---- commands ----

    def _start(self) -> int:
        man = self.seg.manifest
        fns = self.env_fns if self.env_fns is not None else load_env_fns(self.seg)
        for i in range(self.lo, self.hi):
            self._env_index = i
            self.envs.append(fns[i]())
        self._env_index = None
        obs_space, act_space = self.envs[0].observation_space, self.envs[0].action_space
        for j, env in enumerate(self.envs):
            self._env_index = self.lo + j
            self._check_space("observation", env.observation_space, man["obs_leaves"])
            self._check_space("action", env.action_space, man["act_leaves"])
        self._env_index = None
        self.obs_io = LeafIO(obs_space, leaves_of(obs_space, man["codec_bytes"]), self.seg.arrays, "obs")
        self.act_io = LeafIO(act_space, leaves_of(act_space, man["codec_bytes"]), self.seg.arrays, "act")
        if self.slot.restarts:
            self._stand_in()
        self.slot.state = lib.RV_WORKER_READY
        return 0

    def _stand_in(self) -> None:
        """A replacement for a dead worker: its envs restart, and the step
        the old worker never finished reports them truncated."""
        for j, env in enumerate(self.envs):
            i = self.lo + j
            self._env_index = i
            obs, info = env.reset()
            self.obs_io.write_one(i, obs)
            self.rew[i], self.term[i], self.trunc[i] = 0.0, False, True
            self._write_info(i, [dict(info, worker_restarted=True)])
            # NEXT_STEP: the next step returns a fresh episode's first obs, as after any truncation.
            self.autoreset[j] = self.mode is AutoresetMode.NEXT_STEP
        self._env_index = None

    def _check_space(self, what: str, space, expected: list) -> None:
        leaves = [[list(leaf.path), leaf.kind, leaf.dtype, list(leaf.shape)]
                  for leaf in leaves_of(space, self.seg.manifest["codec_bytes"])]
        if leaves != expected:
            raise RuntimeError(
                f"env {self._env_index} has {what} space {space}, whose layout differs from the "
                f"pool's (every env of a pool needs the same {what} space shapes and dtypes)"
            )

    def _write_info(self, i: int, infos: list) -> None:
        if not any(infos):
            self.info_len[i] = 0
            return
        self.info_len[i] = codec.encode_into(infos, self.info[i], 0, what=f"info of env {i}")

    def _step(self) -> int:
        rew, term, trunc, autoreset = self.rew, self.term, self.trunc, self.autoreset
        read_action, write_obs, write_info = self.act_io.read_one, self.obs_io.write_one, self._write_info
        mode, lo = self.mode, self.lo
        for j, env in enumerate(self.envs):
            i = lo + j
            self._env_index = i
            if mode is AutoresetMode.NEXT_STEP:
                if autoreset[j]:
                    obs, info = env.reset()
                    rew[i], term[i], trunc[i] = 0.0, False, False
                    autoreset[j] = False
                else:
                    obs, rew[i], te, tr, info = env.step(read_action(i))
                    term[i], trunc[i] = te, tr
                    autoreset[j] = te or tr
                infos = [info]
            elif mode is AutoresetMode.SAME_STEP:
                obs, rew[i], te, tr, info = env.step(read_action(i))
                term[i], trunc[i] = te, tr
                if te or tr:
                    final = {"final_obs": obs, "final_info": info}
                    obs, info = env.reset()
                    infos = [final, info]
                else:
                    infos = [info]
            else:  # DISABLED: the learner resets done envs itself
                if autoreset[j]:
                    raise AssertionError(
                        f"env {i} was stepped after it ended; with autoreset_mode=DISABLED reset it "
                        "first (reset(options={'reset_mask': ...}))"
                    )
                obs, rew[i], te, tr, info = env.step(read_action(i))
                term[i], trunc[i] = te, tr
                autoreset[j] = te or tr
                infos = [info]
            write_obs(i, obs)
            write_info(i, infos)
        self.slot.env_steps += len(self.envs)
        return 0

    def _request(self):
        return cloudpickle.loads(self.mailbox[: self.slot.cmd_len].tobytes())

    def _reset(self) -> int:
        req = self._request()
        seeds, options, mask = req["seeds"], req["options"], req["mask"]
        for j, env in enumerate(self.envs):
            i = self.lo + j
            if mask is not None and not mask[j]:
                self.info_len[i] = 0
                continue
            self._env_index = i
            obs, info = env.reset(seed=seeds[j], options=options)
            self.autoreset[j] = False
            self.obs_io.write_one(i, obs)
            self._write_info(i, [info])
        return 0

    def _call(self) -> int:
        req = self._request()
        name = req["name"]
        results = []
        for j, env in enumerate(self.envs):
            self._env_index = self.lo + j
            if req["op"] == "setattr":
                env.set_wrapper_attr(name, req["values"][j])
                continue
            attr = env.get_wrapper_attr(name)
            results.append(attr(*req["args"], **req["kwargs"]) if callable(attr) else attr)
        self._env_index = None
        if req["op"] == "setattr":
            return 0
        return self._reply(results, what=f"the results of call({name!r}) per env")

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


def run(segment_path: str, index: int, env_fns: list | None = None) -> int:
    """Attaches to a segment and serves worker ``index`` until closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the learner's to handle
    seg = Segment.attach(segment_path)
    return Worker(seg, index, env_fns).serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rock_vec.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--segment", required=True, help="path of the pool's segment")
    parser.add_argument("--index", required=True, type=int, help="this worker's slot")
    args = parser.parse_args(argv)
    return run(args.segment, args.index)


if __name__ == "__main__":
    sys.exit(main())
