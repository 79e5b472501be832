"""EnvPool-style asynchronous batches on a pool's segment (learner side).

``send`` writes actions into the env rows, pushes the env ids into their
workers' SPSC rings and rings each worker's doorbell once (one C call,
``rv_send``). A worker steps the envs it finds, claims the next row of the
output ring for each (a compare-and-swap) and writes the results there. The
ring is cut into blocks of ``batch_size`` rows; ``recv`` waits for the next
block to fill and hands it over: a batch is assembled in place, in finishing
order, with no gather copy.

The ring holds ``num_envs + batch_size`` rows at least, and an env has at
most one step in flight, so a worker never claims a row of a block the
learner still reads: no worker ever waits for the learner.
"""

from __future__ import annotations

import numpy as np

from .. import errors
from .._core import ffi, lib
from ..segment import codec
from .split import LOCAL


def ring_geometry(num_envs: int, batch_size: int) -> tuple[int, int]:
    """(blocks, rows) of the output ring."""
    blocks = -(-num_envs // batch_size) + 1
    return blocks, blocks * batch_size


def ring_capacity(max_envs_per_worker: int) -> int:
    """Env-id ring slots per worker: a power of two that holds all its envs."""
    return 1 << max(0, (max_envs_per_worker - 1).bit_length())


class AsyncBatches:
    """The learner's side of send/recv for one pool."""

    def __init__(self, pool, batch_size: int, capacity: int):
        self.pool, self.batch, self.capacity = pool, batch_size, capacity  # the learner's own ring capacity
        arrays = pool.arrays
        self.blocks, self.rows = ring_geometry(pool.num_envs, batch_size)
        self.env_id, self.err = arrays["a.env_id"], arrays["a.err"]
        self.info, self.info_len = arrays["a.info"], arrays["a.info.len"]
        self.fills = ffi.cast("uint32_t *", ffi.from_buffer(arrays["a.fill"]))
        self._rings = [ffi.cast("void *", ffi.from_buffer(arrays["rings"][w])) for w in range(pool.num_workers)]
        self.rings = ffi.new("void *[]", self._rings)
        self.running = np.zeros(pool.num_envs, bool)
        self.host_of = pool.host_of.tolist()  # env -> host, as Python ints
        self.in_flight = 0
        self.next_block = 0
        self.local_queue: list[int] = []  # sent envs of the learner's share, in order: stepped by recv
        self.overdue = 0  # how many of them the last recv left: the next one steps them whatever else

    @staticmethod
    def init_rings(arrays: dict, capacity: int) -> None:
        """Learner, before any worker starts: empty rings of ``capacity``."""
        for ring in arrays["rings"]:
            if lib.rv_spsc_ring_init(ffi.cast("rv_spsc_ring_t *", ffi.from_buffer(ring)), capacity) != lib.RV_OK:
                raise ValueError(f"ring capacity {capacity} is not a power of two")

    def send(self, env_ids: np.ndarray) -> None:
        """Starts a step of each env in ``env_ids`` (validated, actions
        written). Envs of the learner's share wait for the next ``recv``,
        where the learner steps them."""
        self.running[env_ids] = True
        self.in_flight += len(env_ids)
        # Grouped by host in plain lists: a batch is a few ids, and numpy's
        # argsort and bincount cost microseconds each on them.
        groups: dict[int, list[int]] = {}
        host_of = self.host_of
        for i in env_ids.tolist():
            groups.setdefault(host_of[i], []).append(i)
        mine = groups.pop(LOCAL, None)
        if mine:
            self.local_queue.extend(mine)
            if not groups:
                return
        used = sorted(groups)
        self.pool.count_commands(len(used))
        rc = lib.rv_send(self.pool.seg.slots, self.rings, self.capacity, ffi.new("uint32_t[]", used),
                         ffi.new("uint32_t[]", [len(groups[w]) for w in used]), len(used),
                         ffi.new("uint64_t[]", [i for w in used for i in groups[w]]))
        if rc != lib.RV_OK:  # a ring holds all its worker's envs: only a worker writing over it fills it
            raise self.pool.corrupted("a worker's ring of env ids is full: a worker wrote over it")

    def restart(self) -> None:
        """Forgets every row: call only when no worker is touching the ring
        (after ``pool.quiesce``)."""
        self.running[:] = False
        self.in_flight = 0
        self.next_block = 0
        self.local_queue.clear()
        self.overdue = 0
        self.pool.seg.header.rows_claimed = 0
        for b in range(self.blocks):
            lib.rv_release_block(self.fills, b)

    def started_all(self) -> None:
        """Every env was handed a reset whose results come back as rows."""
        self.running[:] = True
        self.in_flight = self.pool.num_envs

    def wait_block(self, timeout: float | None) -> tuple[slice, np.ndarray]:
        """Waits for the next full block; returns its rows and the env ids
        they hold (read once and checked: the learner's own copy). The block
        must be given back with ``release`` once read.

        Raises:
            the first env exception among the block's rows (after releasing it);
            WorkerDiedError naming the env ids a dead worker had in flight;
            multiprocessing.TimeoutError.
        """
        b, pool = self.next_block, self.pool
        fill, queue = b * lib.RV_FILL_STRIDE, self.local_queue
        if queue:
            # The learner's share steps the envs left from the last recv, then
            # more only while the block is not full, in time the learner would
            # wait anyway: a learner that computes between its calls finds
            # blocks the workers filled and keeps its own envs for later, but
            # never beyond the next recv.
            started, stepped, overdue = lib.rv_now_ns(), 0, self.overdue
            while queue and (stepped < overdue or self.fills[fill] != self.batch):
                pool.local.step_to_row(queue.pop(0))
                stepped += 1
            self.overdue = len(queue)
            pool.count_local(stepped, lib.rv_now_ns() - started)
            if timeout is not None:  # the timeout counts from the call: the share's own time is part of it
                timeout -= (lib.rv_now_ns() - started) / 1e9
                if timeout <= 0:  # the rows are written: a later recv returns them
                    raise errors.TimeoutError("the call to `recv` has timed out")
        pool.wait(lambda slice_ns: lib.rv_wait_block(
            pool.seg.header, self.fills, b, self.batch, pool.faults_seen, pool.spin_ns, slice_ns),
            timeout, "recv", self._died)
        rows = slice(b * self.batch, (b + 1) * self.batch)
        ids = self.env_id[rows].copy()
        listed = ids.tolist()
        if (min(listed) < 0 or max(listed) >= pool.num_envs or len(set(listed)) < len(listed)
                or not self.running[ids].all()):
            raise pool.corrupted(f"output block {b} names env ids {listed}, not envs that were running")
        if self.err[rows].any():
            k = int(np.flatnonzero(self.err[rows])[0])
            row = rows.start + k
            report = codec.decode(self.info[row, : self.info_len[row]])
            self.release(rows, ids)
            raise errors.restore_exception(report)
        return rows, ids

    def release(self, rows: slice, ids: np.ndarray) -> None:
        """Gives block ``rows`` back; ``ids`` are its env ids as ``wait_block`` returned them."""
        self.running[ids] = False
        self.in_flight -= len(ids)
        lib.rv_release_block(self.fills, rows.start // self.batch)
        self.next_block = (self.next_block + 1) % self.blocks

    def _died(self, w: int) -> str:
        lo, hi = self.pool.ranges[w]
        lost = [int(i) for i in np.flatnonzero(self.running[lo:hi]) + lo]
        return f"with envs {lost} in flight" if lost else "with no env in flight"
