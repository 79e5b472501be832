"""The worker program: hosts a slice of a pool's envs and serves commands.

    python -m rock_vec.worker --segment /dev/shm/rock_vec.123.ab12 --index 3

A worker needs nothing from the learner but the segment path and its index:
the manifest in the segment says which envs it hosts, how to build them and
where every array lives. The local backend forks it from a preloaded fork
server (rock_vec.backends.forkserver); a container runs this same module.

Commands arrive through the worker's slot (rv_worker_wait), results are
written in place into the segment, and rv_worker_done publishes them. An
exception becomes an error report in the worker's mailbox; the worker keeps
serving, so one bad call does not kill the pool.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import cloudpickle

from .. import errors
from .._core import ffi, lib
from ..placement import plan as placement
from ..segment import codec, protocol, registry
from ..segment.layout import write_text
from ..segment.mapping import Segment
from . import main_module
from .hosting import EnvHost, EnvSource, load_env_source
from .rhythm import Rhythm

#: How often a waiting worker looks at the learner's heartbeat.
POLL_NS = 200_000_000
#: How late the kernel may end a worker's timed waits.
TIMER_SLACK_NS = 1_000

class Worker:
    """Serves one worker slot of a segment until told to close: commands
    come through the slot, the envs are an ``EnvHost``."""

    def __init__(self, seg: Segment, index: int, source: EnvSource | None = None):
        self.seg, self.index = seg, index
        self.header, self.slot = seg.header, seg.slot(index)
        self.slot.pid = os.getpid()
        man = seg.manifest
        lo, hi = man["workers"][index]
        self.rhythm = Rhythm(man["worker_spin_ns"], dozes=man["worker_dozes"])
        self.mailbox = seg.arrays["mailbox"][index]
        self.ring = ffi.cast("rv_spsc_ring_t *", ffi.from_buffer(seg.arrays["rings"][index]))
        self.popped = ffi.new("uint64_t[]", max(1, hi - lo))
        self.host = EnvHost(seg, lo, hi, source, f"worker {index}, pid {os.getpid()}")

    # ---- life ----

    def serve(self) -> int:
        # A C thread stamps the slot while this worker lives, busy or not: the
        # learner tells a frozen worker (a paused container) from a slow step.
        beat = lib.rv_heartbeat_start(ffi.addressof(self.slot, "heartbeat_ns"), protocol.HEARTBEAT_NS)
        try:
            return self._serve()
        finally:
            lib.rv_heartbeat_stop(beat)

    def _serve(self) -> int:
        seq = self.slot.cmd_seq  # 0 for a new pool; a replacement takes over where the dead one stopped
        self._finish(seq, self._guard(self._start, "while creating its envs"))
        # A doze's timer may fire this late (the kernel's default, 50 us, is a
        # whole spin's margin): the rhythm measures what remains.
        lib.rv_set_timer_slack(TIMER_SLACK_NS)
        seen = ffi.new("rv_wait_seen_t *")
        handlers = {
            protocol.CMD_STEP: (self._step, "during step"),
            protocol.CMD_RESET: (self._reset, "during reset"),
            protocol.CMD_CALL: (self._call, "during call"),
            protocol.CMD_CLOSE: (self._close, "during close"),
            protocol.CMD_DRAIN: (self._drain, "during send"),
        }
        while True:
            idle_since = lib.rv_now_ns()
            doze, spin = self.rhythm.plan(crowded=bool(self.header.learner_crowded))
            while True:  # a plan longer than POLL_NS goes on after each look at the learner
                waited = lib.rv_now_ns() - idle_since
                rc = lib.rv_worker_wait(self.slot, seq, max(0, doze - waited),
                                        spin if waited < doze + spin else 0, POLL_NS, seen)
                if rc != lib.RV_TIMEOUT:
                    break
                if self._learner_gone():
                    self._close()
                    registry.forget_learner(int(self.header.learner_pid))
                    return 0
            gap = self.slot.cmd_ns - idle_since  # read now: an async send may ring again meanwhile
            commands, seq = (seen.seq - seq) & 0xFFFFFFFF, seen.seq
            cmd = self.slot.cmd
            handler, context = handlers.get(cmd, (self._unknown, "on an unknown command"))
            started = time.perf_counter_ns()
            self._finish(seq, self._guard(handler, context), commands)
            self.slot.busy_ns += time.perf_counter_ns() - started
            if cmd == protocol.CMD_CLOSE:
                return 0
            # After the command, not before: the learner waits for the results, not for this.
            self.rhythm.learn(gap, seen.doze_late_ns, seen.stolen_ns)

    def _guard(self, handler, context: str) -> tuple[int, int]:
        """Runs a handler; returns (status, reply_len)."""
        self.host.env_index = None
        try:
            return protocol.STATUS_OK, handler() or 0
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the learner
            i = self.host.env_index
            where = f"in env {i}" if i is not None else "in worker"
            report = errors.encode_exception(
                exc, f"{where} {context} (worker {self.index}, pid {os.getpid()})"
            )
            self._keep_for_monitors(f"{type(exc).__name__}: {exc} ({where} {context})")
            return protocol.STATUS_ERROR, errors.report_into(report, self.mailbox)

    def _keep_for_monitors(self, text: str) -> None:
        """The last error, whole UTF-8 characters that fit, and the count (last)."""
        a = self.seg.arrays
        write_text(a["m.last_error"][self.index], text)
        a["m.errors"][self.index] += 1

    def _finish(self, seq: int, outcome: tuple[int, int], commands: int = 1) -> None:
        # `commands` > 1 when doorbells of several async sends arrived at once.
        lib.rv_worker_done(self.header, self.slot, seq, outcome[0], outcome[1], commands)

    def _reply(self, value, what: str = "reply") -> int:
        return codec.encode_into(value, self.mailbox, 0, what=what)

    def _learner_gone(self) -> bool:
        beat = self.header.learner_heartbeat_ns
        return lib.rv_now_ns() - beat > protocol.LEARNER_GONE_NS

    def _request(self):
        return cloudpickle.loads(self.mailbox[: self.slot.cmd_len].tobytes())

    # ---- commands ----

    def _start(self) -> int:
        notice = main_module.run(self.seg.manifest.get("main"))  # already run if forked from the fork server
        placed = self.seg.manifest.get("placement")
        if placed is not None:  # before building envs: their memory lands on the worker's node
            why = placement.apply(placed["workers"][self.index], placed["mems"][self.index])
            notice = notice or (f"rock_vec pinned its workers but could not bind their memory ({why})" if why
                                else None)
        if self.host.source is None:
            self.host.source = load_env_source(self.seg)
        self.host.start()
        if self.slot.restarts:
            self.host.restart_as_truncated()
        self.slot.state = protocol.WORKER_READY
        return self._reply({"notice": notice}) if notice else 0

    def _step(self) -> int:
        self.slot.env_steps += self.host.step()
        return 0

    def _drain(self) -> int:
        """Steps every env id queued in this worker's ring (async sends);
        each result goes to a freshly claimed row of the output ring."""
        while n := lib.rv_spsc_ring_pop(self.ring, self.popped, len(self.popped)):
            for k in range(n):
                self.host.step_to_row(self.popped[k])
            self.slot.env_steps += n
        return 0

    def _reset(self) -> int:
        self.host.reset(self._request())
        return 0

    def _call(self) -> int:
        req = self._request()
        results = self.host.call(req)
        if not results:
            return 0
        return self._reply(results, what=f"the results of {req['op']}({req['name']!r}) per env")

    def _close(self) -> int:
        self.host.close()
        return 0

    def _unknown(self) -> int:
        raise RuntimeError(f"unknown command {self.slot.cmd}")


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

