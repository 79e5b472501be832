"""The engine every face stands on: a segment, its workers, and the protocol.

``Pool`` owns one segment and the workers that serve it. It knows nothing
of gymnasium's call conventions; ``rock_vec.vector_env`` and ``rock_vec.sb3``
turn user calls into ``dispatch`` + ``collect`` (and ``batches`` into
send/recv).

Lifetimes: the segment name exists only until the fork server has opened
it; the learner heartbeat runs in a C thread; the fork server reaps workers
and reports deaths into the segment, which wakes ``collect`` at once; a
dead fork server is noticed within one wait slice (100 ms).
"""

from __future__ import annotations

import os
import secrets
import signal
import warnings
import weakref

import cloudpickle
import numpy as np

from . import codec, errors, main_module
from ._core import ffi, lib
from .actions import action_leaves, plan_action_arrays
from .batches import AsyncBatches, ring_capacity, ring_geometry
from .launchers import launcher_for
from .layout import Arena, leaves_of, plan_arrays, plan_async_arrays
from .segment import Segment

WAIT_SLICE_NS = 100_000_000  # how often a waiting learner checks its launcher (a dead fork server)
HEARTBEAT_NS = 100_000_000
LEARNER_SPIN_NS = 50_000  # a spin pays only if the answer comes within a few steps' time
WORKER_SPIN_NS = 200_000  # workers adapt: they spin only while the learner comes back sooner

WAIT_POLICIES = ("auto", "spin", "block")
FAILURE_POLICIES = ("raise", "restart")


def usable_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def spin_budgets(policy: str, num_workers: int) -> tuple[int, int]:
    """Nanoseconds the learner and a worker spin before sleeping.

    'auto' never lets spinners outnumber CPUs. While the learner waits for a
    batch it spins only if the workers and itself each have a CPU; otherwise
    it sleeps, and its CPU is free, so workers may still spin briefly for
    the next command when there are no more workers than CPUs."""
    if policy not in WAIT_POLICIES:
        raise ValueError(f"wait_policy must be one of {WAIT_POLICIES}, got {policy!r}")
    if policy == "block":
        return 0, 0
    if policy == "spin":
        return 1_000_000, 1_000_000
    cpus = usable_cpus()
    return (LEARNER_SPIN_NS if num_workers + 1 <= cpus else 0), (WORKER_SPIN_NS if num_workers <= cpus else 0)


def split_envs(num_envs: int, num_workers: int) -> list[tuple[int, int]]:
    """Contiguous, nearly equal env ranges, one per worker."""
    bounds = [round(w * num_envs / num_workers) for w in range(num_workers + 1)]
    return [(bounds[w], bounds[w + 1]) for w in range(num_workers)]


def _shutdown(seg: Segment, heartbeat, launcher, grace: float) -> None:
    """Asks every worker to close its envs and exit, lets the launcher reap
    them (SIGKILL after ``grace`` seconds), then unmaps. Safe to call from a
    finalizer: it needs nothing but the pool's parts."""
    try:
        seg.header.closing = 1
        n = seg.header.num_workers
        lib.rv_dispatch(seg.header, ffi.new("uint32_t[]", list(range(n))), n, lib.RV_CMD_CLOSE, 0)
        launcher.release(grace)
    except Exception:
        pass
    finally:
        lib.rv_heartbeat_stop(heartbeat)
        seg.close()


class Pool:
    """One segment and its workers.

    Args:
        spec: how workers build envs: ``{"kind": "make", "env_spec", "kwargs"}``
            (JSON, any backend) or ``{"kind": "pickle"}`` with ``env_fns``.
        exact_obs_space: workers check every env's observation space equals
            ``obs_space`` (gymnasium's observation_mode='same'), not just its layout.
        obs_space, act_space: the single-env spaces.
        num_envs, num_workers: pool size; envs are split contiguously.
        autoreset_mode: a gymnasium ``AutoresetMode`` value string.
        wait_policy: 'auto', 'spin' or 'block' (see ``spin_budgets``).
        on_worker_failure: 'raise' or 'restart'.
        max_restarts: restarts allowed per worker slot before raising.
        info_bytes: bytes per env for its info of one step.
        codec_bytes: bytes per env for each observation leaf with no fixed layout.
        mailbox_bytes: bytes per worker for control requests and replies.
        start_timeout: seconds for every worker to build its envs.
        batch_size: rows per block of the async output ring (default num_envs).
        context: "spawn" starts each worker as a fresh interpreter; otherwise
            workers are forked from the fork server (see ``launchers``).
    """

    def __init__(self, *, spec: dict, env_fns=None, exact_obs_space: bool = False, obs_space, act_space,
                 num_envs: int, num_workers: int, autoreset_mode: str, wait_policy: str = "auto",
                 on_worker_failure: str = "raise", max_restarts: int = 3, info_bytes: int = 4096,
                 codec_bytes: int = 65536, mailbox_bytes: int = 8 << 20, start_timeout: float = 120.0,
                 batch_size: int | None = None, context: str | None = None):
        main_module.check_not_running()
        if on_worker_failure not in FAILURE_POLICIES:
            raise ValueError(f"on_worker_failure must be one of {FAILURE_POLICIES}, got {on_worker_failure!r}")
        for name, value in (("info_bytes", info_bytes), ("codec_bytes", codec_bytes), ("mailbox_bytes", mailbox_bytes)):
            if not isinstance(value, int) or value < 64:
                raise ValueError(f"{name} must be an int >= 64, got {value!r}")
        batch_size = num_envs if batch_size is None else batch_size
        if not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= num_envs:
            raise ValueError(f"batch_size must be an int in [1, num_envs={num_envs}], got {batch_size!r}")
        self.num_envs, self.num_workers, self.batch_size = num_envs, num_workers, int(batch_size)
        self.ranges = split_envs(num_envs, num_workers)
        self.worker_of = np.repeat(np.arange(num_workers), [hi - lo for lo, hi in self.ranges])  # env -> worker
        self.on_worker_failure, self.max_restarts = on_worker_failure, max_restarts
        self.spin_ns, self.worker_spin_ns = spin_budgets(wait_policy, num_workers)
        self.obs_leaves = leaves_of(obs_space, codec_bytes)
        self.act_leaves = action_leaves(act_space, codec_bytes)

        blob = b""
        if spec["kind"] == "pickle":
            # Spaces travel too, so every worker checks its envs' spaces exactly, as gymnasium does.
            blob = cloudpickle.dumps({"env_fns": env_fns, "action_space": act_space,
                                      "observation_space": obs_space if exact_obs_space else None})
            spec = dict(spec, length=len(blob))
        manifest = {
            "num_envs": num_envs,
            "workers": self.ranges,
            "autoreset_mode": autoreset_mode,
            "worker_spin_ns": self.worker_spin_ns,
            "batch_size": self.batch_size,
            "codec_bytes": codec_bytes,
            "obs_leaves": [[list(l.path), l.kind, l.dtype, list(l.shape)] for l in self.obs_leaves],
            "act_leaves": [[list(l.path), l.kind, l.dtype, list(l.shape)] for l in self.act_leaves],
            "spec": spec,
            "main": main_module.describe(),
        }
        fixed = ffi.sizeof("rv_header_t") + num_workers * ffi.sizeof("rv_worker_slot_t")
        reserve = 4096
        while True:  # the manifest holds the offsets of what follows it
            arena = Arena(fixed + reserve)
            plan_arrays(arena, self.obs_leaves, num_envs, num_workers, info_bytes, mailbox_bytes)
            plan_action_arrays(arena, self.act_leaves, num_envs)
            blocks, rows = ring_geometry(num_envs, self.batch_size)
            capacity = ring_capacity(max(hi - lo for lo, hi in self.ranges))
            plan_async_arrays(arena, self.obs_leaves, rows, blocks, num_workers,
                              lib.rv_spsc_ring_bytes(capacity), info_bytes)
            arena.add("spec", "|u1", (max(len(blob), 1),))
            manifest.update(arrays=arena.arrays, arrays_start=fixed + reserve)
            if len(cloudpickle.dumps(manifest)) * 2 + 1024 < reserve and len(str(manifest)) * 2 < reserve:
                break
            reserve *= 2
        self.seg = Segment.create(manifest, arena.size, num_envs, num_workers)
        self.id = secrets.token_hex(8)
        self.arrays = self.seg.arrays
        self.arrays["spec"][: len(blob)] = np.frombuffer(blob, np.uint8)
        AsyncBatches.init_rings(self.arrays, capacity)
        self._heartbeat = lib.rv_heartbeat_start(self.seg.header, HEARTBEAT_NS)
        self.launcher = launcher_for(context, self.id)
        self._finalizer = weakref.finalize(self, _shutdown, self.seg, self._heartbeat, self.launcher, 2.0)

        self._target = 0  # completions awaited so far (mod 2^32)
        self._all = list(range(num_workers))
        self._pending: list[int] = []  # workers with an unfinished command
        self._collected: list[int] = []  # workers whose replies `replies` reads
        self.faults_seen = self._errors_seen = 0
        self._oom_kills = errors.oom_kills()
        self.broken: BaseException | None = None
        self._workers_all = ffi.new("uint32_t[]", list(range(num_workers)))
        self.batches = AsyncBatches(self, self.batch_size)
        try:
            self.pids = self.launcher.spawn(self.seg, list(range(num_workers)), start_timeout)
            if self.launcher.unlink_after_spawn:
                self.seg.unlink()  # the fork server and its workers hold it by descriptor now
            self._target = num_workers
            self._pending = self._all
            self.collect(start_timeout, what="startup")
            self.seg.unlink()  # every worker holds it now
            _warn_once(reply["notice"] for reply in map(codec.decode, filter(None, self.replies())))
        except BaseException:
            self.close(grace=0.0)
            raise

    # ---- the protocol ----

    def dispatch(self, cmd: int, workers: list[int] | None = None, requests: dict[int, bytes] | None = None,
                 collect: bool = True) -> None:
        """Hands ``cmd`` to ``workers`` (all when None). ``requests`` maps a
        worker to the request bytes put in its mailbox first. With
        ``collect=False`` (async reset) the results come back as rows, and
        only ``quiesce`` waits for the command."""
        if self.broken is not None:
            raise self.broken
        if workers is None:
            self._target = (self._target + self.num_workers) & 0xFFFFFFFF
            self._pending = self._all
            lib.rv_dispatch(self.seg.header, self._workers_all, self.num_workers, cmd, 0)
            return
        mailbox = self.arrays["mailbox"]
        for w in workers:
            data = (requests or {}).get(w, b"")
            if len(data) > mailbox.shape[1]:
                raise ValueError(
                    f"request for worker {w} is {len(data)} bytes, over mailbox_bytes={mailbox.shape[1]}")
            mailbox[w, : len(data)] = np.frombuffer(data, np.uint8)
        for w in workers:
            self._target = (self._target + 1) & 0xFFFFFFFF
            lib.rv_dispatch(self.seg.header, ffi.new("uint32_t[]", [w]), 1, cmd,
                            len((requests or {}).get(w, b"")))
        if collect:
            self._pending = list(workers)

    def wait(self, wait_once, timeout: float | None, what: str, on_death=None) -> list[int]:
        """Runs ``wait_once(slice_ns) -> rv result`` until RV_OK, in slices
        that notice a dead fork server; returns the workers restarted on the
        way (sync commands with ``on_worker_failure='restart'``). With
        ``on_death(worker) -> str`` a dead worker always raises, described by it.

        Raises:
            WorkerDiedError, multiprocessing.TimeoutError.
        """
        if timeout is None and wait_once(WAIT_SLICE_NS) == lib.RV_OK:
            return []  # the common case, without the slicing loop
        deadline = None if timeout is None else lib.rv_now_ns() + int(timeout * 1e9)
        restarted: list[int] = []
        while True:
            remaining = WAIT_SLICE_NS if deadline is None else min(WAIT_SLICE_NS, deadline - lib.rv_now_ns())
            rc = wait_once(max(remaining, 0))
            if rc == lib.RV_OK:
                return restarted
            if rc == lib.RV_FAULT:
                self.faults_seen = self.seg.header.fault_count
                restarted += self._on_fault(what, on_death)
            elif (lost := self.launcher.lost()) is not None:
                self.broken = errors.WorkerDiedError(lost, worker=-1, pid=-1, env_ids=list(range(self.num_envs)),
                                                     exit_code=None, signal=None)
                raise self.broken
            elif deadline is not None and lib.rv_now_ns() >= deadline:
                raise errors.TimeoutError(f"the call to `{what}` has timed out after {timeout} second(s).")

    def collect(self, timeout: float | None = None, what: str = "call") -> None:
        """Waits for the pending command (``replies`` then reads what it
        returned). Raises the first worker error, a ``WorkerDiedError`` or
        ``multiprocessing.TimeoutError``."""
        header = self.seg.header
        restarted = self.wait(lambda slice_ns: lib.rv_wait_done(
            header, self._target, self.faults_seen, self.spin_ns, slice_ns), timeout, what)
        self._collected, self._pending = self._pending, []
        if self.seg.header.error_count != self._errors_seen:  # one word, not one per worker
            self._errors_seen = self.seg.header.error_count
            failed = [w for w in self._collected if self.seg.slot(w).status == lib.RV_STATUS_ERROR]
            if failed:
                raise self._worker_exception(failed)
        if restarted and what != "step_wait":
            raise self._died_error(restarted[0], f"during `{what}`; it was restarted, the call's results are lost")

    def count_commands(self, n: int) -> None:
        """Counts ``n`` doorbells rung outside ``dispatch`` (async sends)."""
        self._target = (self._target + n) & 0xFFFFFFFF

    def quiesce(self, timeout: float | None = None) -> None:
        """Waits until every worker has finished everything it was handed."""
        self.wait(lambda slice_ns: lib.rv_wait_done(
            self.seg.header, self._target, self.faults_seen, self.spin_ns, slice_ns), timeout, "quiesce")

    def replies(self) -> list:
        """Reply bytes (or None) of each worker of the last collected command."""
        mailbox = self.arrays["mailbox"]
        return [bytes(mailbox[w, : self.seg.slot(w).reply_len]) if self.seg.slot(w).reply_len else None
                for w in self._collected]

    def _worker_exception(self, failed: list[int]) -> BaseException:
        mailbox = self.arrays["mailbox"]
        reports = []
        for w in failed:
            try:
                reports.append(codec.decode(mailbox[w, : self.seg.slot(w).reply_len]))
            except codec.CodecError as exc:
                reports.append({"type": "CodecError", "module": "rock_vec.codec", "args": [str(exc)],
                                "message": str(exc), "traceback": "", "context": f"in worker {w}"})
        exc = errors.restore_exception(reports[0])
        if len(reports) > 1:
            others = "; ".join(f"{r.get('module')}.{r.get('type')} {r.get('context')}"
                               for r in reports[1:] if isinstance(r, dict))
            exc.add_note(f"rock_vec: {len(reports) - 1} more worker(s) failed in the same call: {others}")
        return exc

    def _died_error(self, w: int, when: str) -> errors.WorkerDiedError:
        slot = self.seg.slot(w)
        lo, hi = self.ranges[w]
        code, sig = (None, slot.exit_signal) if slot.exit_signal else (slot.exit_code, None)
        # A SIGKILL while the kernel's OOM-kill count rose: out of memory, not a mystery.
        kills = errors.oom_kills()
        oom = sig == signal.SIGKILL and kills is not None and self._oom_kills is not None and kills > self._oom_kills
        ended = ("was killed by the kernel's out-of-memory killer (SIGKILL)" if oom
                 else errors.how_it_ended(code, sig))
        return errors.WorkerDiedError(
            f"worker {w} (pid {slot.host_pid}, envs {lo}..{hi - 1}) {ended} {when}"
            f"{'' if oom else errors.death_hint(sig)}",
            worker=w, pid=slot.host_pid, env_ids=list(range(lo, hi)), exit_code=code, signal=sig,
            out_of_memory=oom)

    def _on_fault(self, what: str, on_death=None) -> list[int]:
        """Handles workers the fork server found dead; returns restarted ones."""
        dead = [w for w in range(self.num_workers) if self.seg.slot(w).state == lib.RV_WORKER_DEAD]
        if not dead:
            return []
        for w in dead:
            slot = self.seg.slot(w)
            if on_death is not None:
                self.broken = self._died_error(w, f"during `{what}` {on_death(w)}")
                raise self.broken
            if self.on_worker_failure == "raise" or slot.restarts >= self.max_restarts:
                budget = "" if self.on_worker_failure == "raise" else f" (restart budget of {self.max_restarts} spent)"
                self.broken = self._died_error(w, f"during `{what}`{budget}")
                raise self.broken
        for w in dead:
            slot = self.seg.slot(w)
            if slot.done_seq == slot.cmd_seq:  # it owed nothing: its startup is one more completion
                self._target = (self._target + 1) & 0xFFFFFFFF
            slot.restarts += 1
            slot.status = lib.RV_STATUS_OK
            slot.state = lib.RV_WORKER_STARTING
            slot.done_seq = slot.cmd_seq
            if w not in self._pending:
                self._pending.append(w)
            self.launcher.spawn(self.seg, [w], timeout=30)
        return dead

    # ---- end of life ----

    def close(self, grace: float = 5.0) -> None:
        """Closes every worker (asking first, killing after ``grace`` seconds),
        waits until the fork server has reaped them all and unmaps. Idempotent."""
        if not self._finalizer.alive:
            return
        self._finalizer.detach()
        _shutdown(self.seg, self._heartbeat, self.launcher, grace)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive


_warned: set[str] = set()


def _warn_once(notices) -> None:
    """Warns of each notice a worker sent at startup, once per process."""
    for notice in notices:
        if isinstance(notice, str) and notice not in _warned:
            _warned.add(notice)
            warnings.warn(notice, RuntimeWarning, stacklevel=5)


def workers_of(ranges: list[tuple[int, int]], env_mask: np.ndarray) -> list[int]:
    """Workers hosting at least one env selected by a boolean mask."""
    return [w for w, (lo, hi) in enumerate(ranges) if env_mask[lo:hi].any()]

