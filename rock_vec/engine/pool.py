"""The engine every face stands on: a segment, its workers, and the protocol.

``Pool`` owns one segment, the workers that serve it and, when the split
gives the learner a share of the envs, the ``EnvHost`` that steps them in
the learner's process (host ``LOCAL``). It knows nothing of gymnasium's call
conventions; ``rock_vec.vector_env`` and ``rock_vec.sb3`` turn user calls
into ``dispatch`` + ``collect`` (and ``batches`` into send/recv). A command
for the learner's share runs in ``collect``, while the workers run theirs.

Lifetimes: the segment name exists only until the fork server has opened
it; the learner heartbeat runs in a C thread; the fork server reaps workers
and reports deaths into the segment, which wakes ``collect`` at once; a
dead fork server is noticed within one wait slice (100 ms).
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
import warnings
import weakref

import cloudpickle
import numpy as np

from .. import errors
from .._core import ffi, lib
from ..backends import backend_for
from ..placement import plan, topology
from ..placement.cpus import ray_granted_cpus, usable_cpus
from ..segment import codec, protocol, registry
from ..segment.actions import action_leaves, plan_action_arrays
from ..segment.layout import Arena, leaves_of, plan_arrays, plan_async_arrays
from ..segment.mapping import Segment, lay_out
from ..worker import main_module
from ..worker.hosting import EnvHost, EnvSource, make_source
from .batches import AsyncBatches, ring_capacity, ring_geometry
from .crowding import Crowding, KeepOff
from .handouts import GENERATIONS
from .options import PoolOptions, check_int
from .split import LOCAL, Split
from .split import ranges as split_ranges

WAIT_SLICE_NS = 100_000_000  # how often a waiting learner checks its backend (a dead fork server)
# The learner spins only on a CPU of its own (see spin_budgets), where it
# has nothing else to do while it waits: up to a millisecond spares it a
# wake whenever its workers come back late (a halted vCPU resuming).
LEARNER_SPIN_NS = 1_000_000
WORKER_SPIN_NS = 200_000  # a dozing worker's spin past the command's earliest expected time (rock_vec.worker.rhythm)


def keep_torch_off_workers(num_workers: int, cpus: int) -> None:
    """Keeps the learner's torch, if loaded, to the CPUs its workers leave.

    Ray sets an actor's OMP_NUM_THREADS to its CPUs, so torch would run the
    actor's small inference on all of them, and OpenMP's threads spin for
    milliseconds after each parallel region on the workers' cores (measured:
    RLlib's EnvRunner on a pool registered through register_env at
    0.78-0.84x its sync mode, and slower than SyncVectorEnv on a 100 us
    step). torch keeps the rest, never more than it had, never fewer than
    one thread. Only inside Ray, where Ray chose the count: elsewhere the
    learner's threads are the user's (and their count changes torch's
    floating-point results)."""
    torch = sys.modules.get("torch")
    if torch is None or num_workers == 0:
        return
    torch.set_num_threads(max(1, min(torch.get_num_threads(), cpus - num_workers)))


def spin_budgets(policy: str, num_workers: int, cpus: int) -> tuple[int, int]:
    """Nanoseconds the learner and a worker spin before sleeping.

    'auto' never lets spinners outnumber CPUs. While the learner waits for a
    batch it spins only if the workers and itself each have a CPU; otherwise
    it sleeps, and its CPU is free, so workers may still spin for the next
    command, as their rhythm plans it (``rock_vec.worker.rhythm``), when there are
    no more workers than CPUs. Every spinner yields its CPU to a thread that
    wants it."""
    if policy == "block":
        return 0, 0
    if policy == "spin":
        return 1_000_000, 1_000_000
    return (LEARNER_SPIN_NS if num_workers + 1 <= cpus else 0), (WORKER_SPIN_NS if num_workers <= cpus else 0)


def _shutdown(seg: Segment, heartbeat, backend, grace: float, num_workers: int, local: EnvHost | None,
              pool_id: str) -> None:
    """Asks every worker to close its envs and exit, closes the learner's
    own envs meanwhile, lets the backend reap the workers (SIGKILL after
    ``grace`` seconds), then unmaps. Safe to call from a finalizer: it needs
    nothing but the pool's parts (the worker count is the learner's own, never
    read back from the segment)."""
    try:
        seg.header.closing = 1
        lib.rv_dispatch(seg.slots, ffi.new("uint32_t[]", list(range(num_workers))), num_workers,
                        protocol.CMD_CLOSE, 0)
        if local is not None:
            try:
                local.close()
            except Exception:
                pass  # as for the workers' envs: closing goes on
        backend.release(grace)
    except Exception:
        pass
    finally:
        lib.rv_heartbeat_stop(heartbeat)
        seg.close()
        registry.forget(os.getpid(), pool_id)


def _placement(options: PoolOptions, split: Split):
    """Where each worker runs (``rock_vec.placement.plan``), or None: the
    NUMA plan asked for by ``placement`` or ``gpu``, else confinement to the
    ``cpus`` given as ids."""
    if options.placement == "numa" or options.gpu is not None:
        return plan.plan(topology.read(), split.num_workers, options.gpu,
                         learner_cores=1 if split.learner_envs else 0, cpus=options.cpu_ids)
    if options.cpu_ids is not None:
        return plan.confine(split.num_workers, options.cpu_ids)
    return None


class Pool:
    """One segment, its workers, and the learner's own share of the envs.

    Args:
        spec: how workers build envs: ``{"kind": "make", "env_spec", "kwargs"}``
            (JSON, any backend) or ``{"kind": "pickle"}`` with ``env_fns``.
        exact_obs_space: hosts check every env's observation space equals
            ``obs_space`` (gymnasium's observation_mode='same'), not just its layout.
        obs_space, act_space: the single-env spaces.
        num_envs: pool size.
        split: which envs the learner steps and how many workers step the
            rest (``rock_vec.engine.split``).
        autoreset_mode: a gymnasium ``AutoresetMode`` value string.
        options: ``PoolOptions`` (wait policy, failures, sizes, backend).
        codec_bytes: bytes per env for each observation leaf with no fixed layout.
        mailbox_bytes: bytes per worker for control requests and replies.

    Host ids: ``LOCAL`` for the learner's share, 0.. for the workers.
    """

    def __init__(self, *, spec: dict, env_fns=None, exact_obs_space: bool = False, obs_space, act_space,
                 num_envs: int, split: Split, autoreset_mode: str, options: PoolOptions,
                 codec_bytes: int = 65536, mailbox_bytes: int = 8 << 20):
        main_module.check_not_running()
        check_int("codec_bytes", codec_bytes, 64, optional=False)
        check_int("mailbox_bytes", mailbox_bytes, 64, optional=False)
        batch_size = num_envs if options.batch_size is None else options.batch_size
        if not 1 <= batch_size <= num_envs:
            raise ValueError(f"batch_size must be an int in [1, num_envs={num_envs}], got {batch_size!r}")
        num_workers = split.num_workers
        self.num_envs, self.num_workers, self.batch_size, self.split = num_envs, num_workers, batch_size, split
        self.ranges = split_ranges(split)  # the workers'
        self.local_range = (0, split.learner_envs)
        sizes = [split.learner_envs] + [hi - lo for lo, hi in self.ranges]
        self.host_of = np.repeat([LOCAL, *range(num_workers)], sizes)  # env -> host (LOCAL: the learner)
        self.hosts = ([LOCAL] if split.learner_envs else []) + list(range(num_workers))
        self.on_worker_failure, self.max_restarts = options.on_worker_failure, options.max_restarts
        self.spin_budget_ns, self.worker_spin_ns = spin_budgets(options.wait_policy, num_workers,
                                                                usable_cpus(options.cpus))
        # While the learner's own threads crowd the CPUs nobody spins ('auto') and the
        # workers keep off the learner's CPU; 'spin' is for machines kept for the job.
        self.crowding = Crowding() if options.wait_policy != "spin" else None
        self.crowded = False
        self.keep_off = KeepOff()
        self.pids: list[int] = []  # the workers' host pids, as their backend started them
        self.placement = _placement(options, split)
        self.obs_leaves = leaves_of(obs_space, codec_bytes)
        # Containers keep no lent batch apart from their writes (rock_vec.engine.handouts).
        self.obs_generations = 1 if options.backend_name == "docker" else GENERATIONS
        self.act_leaves = action_leaves(act_space, codec_bytes)

        blob = b""
        if spec["kind"] == "pickle":
            # Spaces travel too, so every worker checks its envs' spaces exactly, as gymnasium does.
            blob = cloudpickle.dumps({"env_fns": env_fns, "action_space": act_space,
                                      "observation_space": obs_space if exact_obs_space else None})
            spec = dict(spec, length=len(blob))
        capacity = ring_capacity(max(hi - lo for lo, hi in self.ranges))
        self.seg = Segment.create(*lay_out(self._manifest(spec, autoreset_mode, options, codec_bytes), num_workers,
                                           lambda arena: self._declare_arrays(arena, options.info_bytes, mailbox_bytes,
                                                                              capacity, len(blob))),
                                  num_envs, num_workers)
        self.id = secrets.token_hex(8)
        self.arrays = self.seg.arrays
        self._learner_counts = ffi.cast("uint64_t *", ffi.from_buffer(self.arrays["m.learner"]))  # cheaper than numpy items
        self.arrays["spec"][: len(blob)] = np.frombuffer(blob, np.uint8)
        AsyncBatches.init_rings(self.arrays, capacity)
        self._heartbeat = lib.rv_heartbeat_start(ffi.addressof(self.seg.header, "learner_heartbeat_ns"),
                                                 protocol.HEARTBEAT_NS)
        self.backend = backend_for(options, self.id, self.placement)
        self.local = None
        if split.learner_envs:
            source = (make_source(spec, num_envs) if spec["kind"] == "make" else
                      EnvSource(env_fns, obs_space if exact_obs_space else None, act_space))
            self.local = EnvHost(self.seg, 0, split.learner_envs, source, f"the learner's process, pid {os.getpid()}")
        self._finalizer = weakref.finalize(self, _shutdown, self.seg, self._heartbeat, self.backend, 2.0,
                                           num_workers, self.local, self.id)

        self._target = 0  # completions awaited so far (mod 2^32)
        self._all = list(range(num_workers))
        self._pending: list[int] = []  # hosts with an unfinished command
        self._collected: list[int] = []  # hosts whose replies `replies` reads
        self._local_op: tuple | None = None  # (cmd, request) the learner's share runs in `collect`
        self._local_reply: bytes | None = None
        self._local_error: BaseException | None = None  # raised once the workers' part is collected
        self.faults_seen = self._errors_seen = 0
        self._silenced: dict[int, float] = {}  # worker -> seconds its heartbeat was silent when it was killed
        self._oom_kills = errors.oom_kills()
        self.broken: BaseException | None = None
        self._workers_all = ffi.new("uint32_t[]", list(range(num_workers)))
        self._slots = self.seg.slots
        self.batches = AsyncBatches(self, self.batch_size, capacity)
        self._start(options.start_timeout)
        if ray_granted_cpus():  # a pool inside a Ray actor: Ray chose torch's threads, the workers need CPUs
            keep_torch_off_workers(num_workers, usable_cpus(options.cpus))

    def _manifest(self, spec: dict, autoreset_mode: str, options: PoolOptions, codec_bytes: int) -> dict:
        """What a worker reads to serve its envs (shm/FORMAT.md), but the arrays' offsets."""
        return {
            "num_envs": self.num_envs,
            "workers": self.ranges,
            "learner_envs": self.split.learner_envs,
            "autoreset_mode": autoreset_mode,
            "worker_spin_ns": self.worker_spin_ns,
            "worker_dozes": options.wait_policy == "auto",  # see rock_vec.worker.rhythm
            "batch_size": self.batch_size,
            "codec_bytes": codec_bytes,
            "obs_generations": self.obs_generations,
            "obs_leaves": [[list(l.path), l.kind, l.dtype, list(l.shape)] for l in self.obs_leaves],
            "act_leaves": [[list(l.path), l.kind, l.dtype, list(l.shape)] for l in self.act_leaves],
            "spec": spec,
            "main": None if options.backend_name == "docker" else main_module.describe(),  # not in a container
            "placement": None if self.placement is None else self.placement.manifest(),
        }

    def _declare_arrays(self, arena: Arena, info_bytes: int, mailbox_bytes: int, capacity: int,
                        spec_bytes: int) -> None:
        """Every array of the segment, in order: the step's, the actions', the async rows' and the env spec's."""
        plan_arrays(arena, self.obs_leaves, self.num_envs, self.num_workers, info_bytes, mailbox_bytes,
                    self.obs_generations)
        plan_action_arrays(arena, self.act_leaves, self.num_envs)
        blocks, rows = ring_geometry(self.num_envs, self.batch_size)
        plan_async_arrays(arena, self.obs_leaves, rows, blocks, self.num_workers,
                          lib.rv_spsc_ring_bytes(capacity), info_bytes)
        arena.add("spec", "|u1", (max(spec_bytes, 1),))

    def _start(self, start_timeout: float) -> None:
        """Starts the workers, builds the learner's share meanwhile, and waits
        until every env is built; on any failure, nothing is left running."""
        try:
            self.pids = self.backend.spawn(self.seg, list(range(self.num_workers)), start_timeout)
            if self.backend.unlink_after_spawn:
                self.seg.unlink()  # the fork server and its workers hold it by descriptor now
            self._target = self.num_workers
            self._pending = list(self._all)
            if self.local is not None:  # built while the workers build theirs
                try:
                    self.local.start()
                except Exception as exc:
                    exc.add_note(f"rock_vec: raised in env {self.local.env_index} while creating the envs of the "
                                 "learner's own share (learner_envs)")
                    raise
            self.collect(start_timeout, what="startup")
            if not self.backend.keeps_segment_name:
                self.seg.unlink()  # every worker holds it now
            _warn_once(reply["notice"] for reply in map(codec.decode, filter(None, self.replies())))
            self._started = time.time()
            registry.record(self.listing())
        except BaseException:
            self.close(grace=0.0)
            raise

    # ---- the protocol ----

    def dispatch(self, cmd: int, hosts: list[int] | None = None, requests: dict[int, object] | None = None,
                 collect: bool = True, what: str = "the request") -> None:
        """Hands ``cmd`` to ``hosts`` (all when None). ``requests`` maps a
        host to its request, pickled into a worker's mailbox first (the
        learner's share takes it as it is). With ``collect=False`` (async
        reset) the results come back as rows, the learner's share runs its
        part at once, and only ``quiesce`` waits for the workers.

        Raises:
            TypeError: a request that cannot be pickled (``what`` names it).
            ValueError: a request larger than the mailbox.
        """
        if self.broken is not None:
            raise self.broken
        if self.crowding is not None:
            if self.crowding.sample() != self.crowded:
                self.crowded = not self.crowded
                self.seg.header.learner_crowded = self.crowded  # read by each worker as it plans its next wait
            self.keep_off.follow(self.pids, lib.rv_current_cpu() if self.crowded else -1)
        local = self.local is not None and (hosts is None or LOCAL in hosts)
        remote = self._all if hosts is None else [h for h in hosts if h != LOCAL]
        blobs = {}
        for w in remote if requests else ():
            try:
                blobs[w] = cloudpickle.dumps(requests[w])
            except Exception as exc:
                raise TypeError(f"{what} cannot be sent to the workers: {exc}") from exc
        if hosts is None and not blobs:
            self._target = (self._target + self.num_workers) & 0xFFFFFFFF
            lib.rv_dispatch(self._slots, self._workers_all, self.num_workers, cmd, 0)
        else:
            mailbox = self.arrays["mailbox"]
            for w, data in blobs.items():
                if len(data) > mailbox.shape[1]:
                    raise ValueError(
                        f"request for worker {w} is {len(data)} bytes, over mailbox_bytes={mailbox.shape[1]}")
            for w, data in blobs.items():
                mailbox[w, : len(data)] = np.frombuffer(data, np.uint8)
            for w in remote:
                self._target = (self._target + 1) & 0xFFFFFFFF
                lib.rv_dispatch(self._slots, ffi.new("uint32_t[]", [w]), 1, cmd, len(blobs.get(w, b"")))
        self._local_op = (cmd, requests.get(LOCAL) if requests else None) if local else None
        if not collect:
            if self._local_op is not None:
                error = self._run_local(what)
                if error is not None:
                    raise error
            return
        self._pending = list(self.hosts if hosts is None else hosts)

    @property
    def spin_ns(self) -> int:
        """How long the learner spins for its workers before it sleeps, now."""
        return 0 if self.crowded else self.spin_budget_ns

    def _run_local(self, what: str) -> BaseException | None:
        """Runs the learner's share of the pending command; returns the
        exception an env raised (the caller raises it once the workers are
        done), with a note naming the env."""
        (cmd, request), self._local_op = self._local_op, None
        host, self._local_reply = self.local, None
        try:
            if cmd == protocol.CMD_STEP:
                started = time.perf_counter_ns()
                self.count_local(host.step(), time.perf_counter_ns() - started)
            elif cmd == protocol.CMD_RESET:
                host.reset(request)
            elif cmd == protocol.CMD_CALL:
                results = host.call(request)
                if results:  # through the codec, as a worker's: an env's results follow one rule wherever it runs
                    self._local_reply = codec.encode(
                        results, what=f"the results of {request['op']}({request['name']!r}) per env")
            elif cmd == protocol.CMD_CLOSE:
                host.close()
        except Exception as exc:
            where = f"in env {host.env_index}" if host.env_index is not None else "in the learner's share"
            exc.add_note(f"rock_vec: raised {where} during `{what}`, in the learner's own process (learner_envs)")
            return exc
        return None

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
        stuck = 0  # slices in a row in which every worker said it was done, yet the wait went on
        while True:
            remaining = WAIT_SLICE_NS if deadline is None else min(WAIT_SLICE_NS, deadline - lib.rv_now_ns())
            rc = wait_once(max(remaining, 0))
            if rc == lib.RV_OK:
                return restarted
            if rc == lib.RV_TIMEOUT:
                self._kill_frozen_workers()
                stuck = stuck + 1 if self._all_idle() else 0
                if stuck >= 2:
                    raise self.corrupted(f"every worker reports its commands done, but `{what}` still waits: "
                                         "the segment's counters were written over")
            if rc == lib.RV_FAULT:
                self.faults_seen = self.seg.header.fault_count
                restarted += self._on_fault(what, on_death)
            elif (lost := self.backend.lost()) is not None:
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
        if self._local_op is not None:  # the learner's share steps while the workers step theirs
            started = lib.rv_now_ns()
            self._local_error = self._run_local(what)
            if timeout is not None:  # the timeout counts from the call: the share's own time is part of it
                limit, timeout = timeout, timeout - (lib.rv_now_ns() - started) / 1e9
                if timeout <= 0:  # as a late worker: the call stays pending, a later wait collects it
                    raise errors.TimeoutError(f"the call to `{what}` has timed out after {limit} second(s).")
        restarted = self.wait(lambda slice_ns: lib.rv_wait_done(
            header, self._target, self.faults_seen, self.spin_ns, slice_ns), timeout, what)
        ahead = (header.done_count - self._target) & 0xFFFFFFFF
        if 0 < ahead < 1 << 31:  # more completions than commands given: the counter was written over
            raise self.corrupted(f"the completion counter is {ahead} ahead of the commands given")
        self._collected, self._pending = self._pending, []
        local_error, self._local_error = self._local_error, None
        if local_error is not None:  # the lowest env ids: raised first, as SyncVectorEnv would
            raise local_error
        if self.seg.header.error_count != self._errors_seen:  # one word, not one per worker
            self._errors_seen = self.seg.header.error_count
            failed = [w for w in self._collected if w != LOCAL and self.seg.slot(w).status == protocol.STATUS_ERROR]
            if failed:
                raise self._worker_exception(failed)
        if restarted and what != "step_wait":
            raise self._died_error(restarted[0], f"during `{what}`; it was restarted, the call's results are lost")

    def _kill_frozen_workers(self) -> None:
        """Kills workers whose heartbeat stopped (frozen, not merely busy):
        their deaths then come back as faults, as any worker's."""
        now = lib.rv_now_ns()
        silent = []
        for w in self._all:
            slot = self.seg.slot(w)
            beat = slot.heartbeat_ns
            if (w not in self._silenced and beat and now - beat > protocol.WORKER_SILENT_NS
                    and slot.state in (protocol.WORKER_STARTING, protocol.WORKER_READY)):
                self._silenced[w] = (now - beat) / 1e9
                silent.append(w)
        if silent:
            self.backend.kill(silent)

    def _all_idle(self) -> bool:
        """Every live worker has finished every command it was given (so a
        wait that goes on can only mean the counters were written over)."""
        header = self.seg.header
        if header.magic != lib.RV_MAGIC or header.num_workers != self.num_workers:
            return True  # the header itself was overwritten: the wait cannot end well
        for w in self._all:
            slot = self.seg.slot(w)
            if slot.state == protocol.WORKER_DEAD or slot.state == protocol.WORKER_STARTING or slot.done_seq != slot.cmd_seq:
                return False
        return True

    def corrupted(self, why: str) -> errors.SegmentCorruptedError:
        """Marks the pool broken by a worker that wrote over the segment."""
        self.broken = errors.SegmentCorruptedError(
            f"the pool's shared segment was written over ({why}); a worker or an env in it wrote where it must "
            "not. The pool cannot go on: close() it (that still ends every worker)")
        return self.broken

    def count_commands(self, n: int) -> None:
        """Counts ``n`` doorbells rung outside ``dispatch`` (async sends)."""
        self._target = (self._target + n) & 0xFFFFFFFF

    def quiesce(self, timeout: float | None = None) -> None:
        """Waits until every worker has finished everything it was handed."""
        self.wait(lambda slice_ns: lib.rv_wait_done(
            self.seg.header, self._target, self.faults_seen, self.spin_ns, slice_ns), timeout, "quiesce")

    def count_local(self, steps: int, ns: int) -> None:
        """Counts env steps of the learner's share for monitors, as a worker's slot counts its own."""
        counts = self._learner_counts
        counts[0] += steps
        counts[1] += ns

    def listing(self) -> dict:
        """What ``rock-vec ps`` shows of this pool (``rock_vec.segment.registry``)."""
        return {
            "pool": self.id, "learner_pid": os.getpid(), "segment_fd": self.seg.fd,  # monitors attach through it
            "backend": self.backend.name, "num_envs": self.num_envs,
            "split": str(self.split), "learner_envs": list(self.local_range), "started": self._started,
            "workers": [{"index": w, "pid": int(self.seg.slot(w).host_pid), "envs": list(self.ranges[w]),
                         "where": self.backend.describe(w)} for w in self._all],
        }

    @property
    def pending(self) -> bool:
        """A command awaits ``collect``."""
        return bool(self._pending)

    def replies(self) -> list:
        """Reply bytes (or None) of each host of the last collected command, in its order."""
        mailbox = self.arrays["mailbox"]
        return [self._local_reply if w == LOCAL else
                bytes(mailbox[w, : self.seg.slot(w).reply_len]) if self.seg.slot(w).reply_len else None
                for w in self._collected]

    def range_of(self, host: int) -> tuple[int, int]:
        """The env indices ``host`` steps."""
        return self.local_range if host == LOCAL else self.ranges[host]

    def hosts_of(self, env_mask: np.ndarray) -> list[int]:
        """Hosts of at least one env selected by a boolean mask."""
        return [h for h in self.hosts if env_mask[slice(*self.range_of(h))].any()]

    def _worker_exception(self, failed: list[int]) -> BaseException:
        mailbox = self.arrays["mailbox"]
        reports = []
        for w in failed:
            try:
                reports.append(codec.decode(mailbox[w, : self.seg.slot(w).reply_len]))
            except codec.CodecError as exc:  # the worker's reply itself is garbage: the codec's refusal is the error
                reports.append(errors.encode_exception(exc, f"in worker {w}, whose error report does not decode"))
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
        silent = self._silenced.get(w)
        if silent is not None:
            oom = False
            ended = (f"stopped answering (no heartbeat for {silent:.1f} s: frozen, not merely busy) and was "
                     "killed by rock_vec")
        elif oom:
            ended = "was killed by the kernel's out-of-memory killer (SIGKILL)"
        else:
            ended = errors.how_it_ended(code, sig)
        hint = "" if oom or silent is not None else errors.death_hint(sig)
        where = ", ".join(filter(None, [f"pid {slot.host_pid}", self.backend.describe(w), f"envs {lo}..{hi - 1}"]))
        return errors.WorkerDiedError(
            f"worker {w} ({where}) {ended} {when}{hint}",
            worker=w, pid=slot.host_pid, env_ids=list(range(lo, hi)), exit_code=code, signal=sig,
            out_of_memory=oom)

    def _on_fault(self, what: str, on_death=None) -> list[int]:
        """Handles workers the fork server found dead; returns restarted ones."""
        dead = [w for w in range(self.num_workers) if self.seg.slot(w).state == protocol.WORKER_DEAD]
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
            slot.status = protocol.STATUS_OK
            slot.state = protocol.WORKER_STARTING
            slot.done_seq = slot.cmd_seq
            slot.heartbeat_ns = 0  # the replacement beats anew
            self._silenced.pop(w, None)
            if w not in self._pending:
                self._pending.append(w)
            self.pids[w] = self.backend.spawn(self.seg, [w], timeout=30)[0]
        registry.record(self.listing())
        return dead

    # ---- end of life ----

    def close(self, grace: float = 5.0, finish: str | None = None) -> None:
        """Closes every worker (asking first, killing after ``grace`` seconds),
        waits until the fork server has reaped them all and unmaps. Idempotent.

        ``finish`` names the face's call still pending (``"step_wait"``), as
        gymnasium's and SB3's close do: the workers get ``grace`` to finish it
        first, its results and errors dropped; if it cannot finish, they are
        killed at once."""
        if not self._finalizer.alive:
            return
        if finish is not None and self.pending:
            try:
                self.collect(grace, finish)
            except Exception:
                grace = 0.0
        self._finalizer.detach()
        _shutdown(self.seg, self._heartbeat, self.backend, grace, self.num_workers, self.local, self.id)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive


_warned: set[str] = set()
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # rock_vec/


def _warn_once(notices) -> None:
    """Warns of each notice a worker sent at startup, once per process, at
    the user's line that built the pool."""
    for notice in notices:
        if isinstance(notice, str) and notice not in _warned:
            _warned.add(notice)
            warnings.warn(notice, RuntimeWarning, stacklevel=_outside_the_package())


def _outside_the_package() -> int:
    """``warnings.warn``'s stacklevel, for a warning raised by this function's
    caller, of the first frame outside rock_vec: the user's call, however
    deep the faces and the engine sit (Python 3.12's skip_file_prefixes)."""
    level, frame = 2, sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    return level
