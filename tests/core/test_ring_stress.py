"""Cross-process stress of the C core through the cffi module rock_vec._core.

Each test maps one file of /dev/shm (named like a segment of this process,
so the suite's leftover check covers it) and runs the other side in child
Python processes started with subprocess:

* the SPSC ring: a child producer pushes ~1-2 million checksummed sequence
  numbers in random batches, the test pops them in random batches and checks
  that none is lost, duplicated, reordered or corrupt;
* the pool protocol: two worker processes loop rv_worker_wait/rv_worker_done
  and write checksummed results to a shared numpy array; the test is the
  learner and checks every one of ~20k rounds;
* a fault reported by another process wakes the sleeping learner.

Every wait is bounded, children are killed in `finally`, the file is unlinked.
"""

from __future__ import annotations

import mmap
import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rock_vec._core import ffi, lib
from rock_vec.segment.mapping import NAME_PREFIX, SHM_DIR

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000
S = 1_000_000_000

# Message = 40-bit sequence number << 24 | 24-bit checksum of it (as in test_core.c).
ENCODE = """
def encode(seq):
    seq = np.asarray(seq, dtype=np.uint64)
    check = ((seq ^ np.uint64(0x5DEECE66D)) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    return (seq << np.uint64(24)) | (check & np.uint64(0xFFFFFF))
"""
exec(ENCODE)  # defines encode() here exactly as the children define it

CHILD_PRELUDE = """
import mmap, os, signal, sys, time
import numpy as np
from rock_vec._core import ffi, lib

def attach(path, parent):
    if lib.rv_die_with_parent(signal.SIGKILL, parent) != 0:
        sys.exit(90)  # the test process is already gone
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, os.fstat(fd).st_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return mm, ffi.from_buffer(mm)
""" + ENCODE

RING_PRODUCER = CHILD_PRELUDE + """
path, parent, count, max_push, seed, limit_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
mm, buf = attach(path, parent)
ring = ffi.cast("rv_spsc_ring_t *", buf)
msgs = ffi.new("uint64_t[]", count)
np.frombuffer(ffi.buffer(msgs), dtype=np.uint64)[:] = encode(np.arange(count, dtype=np.uint64))
batches = np.random.default_rng(seed).integers(1, max_push + 1, size=65536).tolist()
sent, i, idle, deadline = 0, 0, 0, time.monotonic() + limit_s
while sent < count:
    n = min(batches[i & 65535], count - sent)
    i += 1
    k = lib.rv_spsc_ring_push(ring, msgs + sent, n)
    if k > n:
        sys.exit(f"push of {n} returned {k}")
    if lib.rv_spsc_ring_size(ring) > ring.capacity:
        sys.exit("producer saw size > capacity")
    sent += k
    if k:
        idle = 0
        continue
    idle += 1
    if idle % 256 == 0:
        time.sleep(0)
        if time.monotonic() > deadline:
            sys.exit(f"producer stuck at {sent} of {count} (ring stays full)")
print("pushes", i, flush=True)
del ring
ffi.release(buf)
mm.close()
"""

POOL_WORKER = CHILD_PRELUDE + """
path, parent, w, doze_ns, spin_ns, wait_ns, values_off, results_off, cell = sys.argv[1], *map(int, sys.argv[2:])
K, MASK = 0x2545F4914F6CDD1D, (1 << 64) - 1
mm, buf = attach(path, parent)
h = ffi.cast("rv_header_t *", buf)
slot = ffi.cast("rv_worker_slot_t *", ffi.cast("char *", h) + h.workers_off) + w
values = np.frombuffer(mm, dtype=np.uint64, count=h.num_workers * cell, offset=values_off)
results = np.frombuffer(mm, dtype=np.uint64, count=h.num_workers * cell, offset=results_off)
me = w * cell
slot.pid = os.getpid()
slot.state = lib.RV_WORKER_READY
last = slot.cmd_seq
lib.rv_worker_done(h, slot, last, lib.RV_STATUS_OK, 0, 1)  # startup counts as one completion
seen = ffi.new("rv_wait_seen_t *")
commands = 0
while True:
    rc = lib.rv_worker_wait(slot, last, doze_ns, spin_ns, wait_ns, seen)
    if rc != lib.RV_OK:
        slot.state = lib.RV_WORKER_EXITED
        sys.exit(f"worker {w}: rv_worker_wait -> {rc} after seq {last} (lost wakeup or learner gone)")
    seq = seen.seq
    if seq != (last + 1) & 0xFFFFFFFF:
        sys.exit(f"worker {w}: cmd_seq went from {last} to {seq}")
    cmd, n = slot.cmd, slot.cmd_len
    if cmd == lib.RV_CMD_CLOSE:
        slot.state = lib.RV_WORKER_EXITED
        lib.rv_worker_done(h, slot, seq, lib.RV_STATUS_OK, 0, 1)
        break
    v = int(values[me])
    results[me] = (v * K + w) & MASK
    results[me + 1] = n
    results[me + 2] = seq
    results[me + 3] = (v ^ (n * 0x9E3779B97F4A7C15) ^ seq) & MASK  # checksum of the three
    commands += 1
    lib.rv_worker_done(h, slot, seq, lib.RV_STATUS_OK, n ^ w, 1)
    last = seq
print("commands", commands, flush=True)
del values, results, slot, h
ffi.release(buf)
mm.close()
"""

FAULT_REPORTER = CHILD_PRELUDE + """
path, parent, delay_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
mm, buf = attach(path, parent)
h = ffi.cast("rv_header_t *", buf)
deadline = time.monotonic() + 30
while h.learner_sleeping != 1:  # report only once the learner sleeps in rv_wait_done
    if time.monotonic() > deadline:
        sys.exit("the learner never went to sleep")
    time.sleep(0.001)
time.sleep(delay_s)
print("reported_at", lib.rv_now_ns(), flush=True)
lib.rv_report_fault(h)
del h
ffi.release(buf)
mm.close()
"""


@contextmanager
def shared_file(size: int):
    """A fresh 0600 file of `size` zero bytes in /dev/shm, mapped shared;
    yields (path, mmap). Unlinked (and unmapped when possible) on the way out."""
    path = os.path.join(SHM_DIR, f"{NAME_PREFIX}{os.getpid()}.core-test-{secrets.token_hex(6)}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    mm = None
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        yield path, mm
    finally:
        os.close(fd)
        os.unlink(path)
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a view outlived the test (after a failure): freed with it
                pass


def spawn(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str, str]:
    """Waits for the child (killing it past `timeout`); returns (code, out, err)."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate(timeout=10)
        err += f"\n[killed after {timeout} s]"
    return child.returncode, out, err


def kill_all(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()
    for child in children:
        try:
            child.communicate(timeout=10)
        except Exception:  # already reaped, or pipes closed
            pass


# ---------------------------------------------------------------- ring


@pytest.mark.parametrize(
    "capacity,count,max_push,max_pop",
    [(4096, 1_500_000, 600, 900),  # mostly full-speed batches, frequent wrap
     (64, 1_000_000, 100, 48)],    # tiny ring: full and empty all the time
    ids=["cap4096", "cap64"])
def test_ring_delivers_every_message_once_in_order_across_processes(capacity, count, max_push, max_pop):
    limit_s = 60.0
    with shared_file(lib.rv_spsc_ring_bytes(capacity)) as (path, mm):
        buf = ffi.from_buffer(mm)
        ring = ffi.cast("rv_spsc_ring_t *", buf)
        assert lib.rv_spsc_ring_init(ring, capacity) == lib.RV_OK
        received = ffi.new("uint64_t[]", count)
        batches = np.random.default_rng(7).integers(1, max_pop + 1, size=65536).tolist()
        children = [spawn(RING_PRODUCER, path, os.getpid(), count, max_push, 11, limit_s)]
        try:
            got, i, idle, pops = 0, 0, 0, 0
            t0 = time.monotonic()
            deadline = t0 + limit_s
            while got < count:
                n = min(batches[i & 65535], count - got)
                i += 1
                k = lib.rv_spsc_ring_pop(ring, received + got, n)
                assert k <= n
                got += k
                if k:
                    idle = 0
                    continue
                idle += 1
                if idle % 256 == 0:
                    time.sleep(0)
                    if children[0].poll() is not None and lib.rv_spsc_ring_size(ring) == 0:
                        break  # the producer is gone and nothing is left
                    assert time.monotonic() < deadline, f"consumer stuck at {got} of {count} messages"
            elapsed = time.monotonic() - t0
            code, out, err = finish(children[0])
            assert code == 0, f"producer exited with {code}: {err[-3000:]}"
            assert got == count, f"only {got} of {count} messages arrived (lost)"
            assert lib.rv_spsc_ring_size(ring) == 0, "messages beyond the count (duplicated)"
            assert lib.rv_spsc_ring_pop(ring, received, 1) == 0

            msgs = np.frombuffer(ffi.buffer(received), dtype=np.uint64)
            seq = msgs >> np.uint64(24)
            corrupt = np.flatnonzero(encode(seq) != msgs)
            assert corrupt.size == 0, f"{corrupt.size} corrupt messages, first at {corrupt[0]}: {msgs[corrupt[0]]:#x}"
            wrong = np.flatnonzero(seq != np.arange(count, dtype=np.uint64))
            assert wrong.size == 0, (f"{wrong.size} messages out of place (lost/duplicated/reordered); "
                                     f"first at {wrong[0]}: sequence {seq[wrong[0]]}")
            print(f"{count} msgs through a {capacity}-slot ring in {elapsed:.2f} s; {out.strip()}, pops {i}")
            del msgs, seq
        finally:
            kill_all(children)
            del ring
            ffi.release(buf)


# ---------------------------------------------------------------- pool

CELL = 8  # uint64 per worker cell: one cache line each
K, MASK = 0x2545F4914F6CDD1D, (1 << 64) - 1


def _new_segment(mm, num_workers: int) -> tuple:
    buf = ffi.from_buffer(mm)
    h = ffi.cast("rv_header_t *", buf)
    header, slot = ffi.sizeof("rv_header_t"), ffi.sizeof("rv_worker_slot_t")
    h.magic = lib.RV_MAGIC
    h.version = lib.RV_FORMAT_VERSION
    h.header_size = header
    h.total_size = len(mm)
    h.num_workers = num_workers
    h.workers_off = header
    slots = ffi.cast("rv_worker_slot_t *", ffi.cast("char *", h) + h.workers_off)
    values_off = header + num_workers * slot
    results_off = values_off + num_workers * CELL * 8
    assert results_off + num_workers * CELL * 8 <= len(mm)
    return buf, h, slots, values_off, results_off


def _pool_state(h, slots, num_workers: int, children) -> str:
    lines = [f"done_count={h.done_count} done_target={h.done_target} learner_sleeping={h.learner_sleeping} "
             f"wake_seq={h.wake_seq} fault_count={h.fault_count}"]
    for w in range(num_workers):
        s = slots[w]
        lines.append(f"worker {w}: cmd_seq={s.cmd_seq} done_seq={s.done_seq} sleeping={s.sleeping} "
                     f"state={s.state} pid={s.pid} exit={children[w].poll() if w < len(children) else None}")
    return "\n".join(lines)


@pytest.mark.parametrize("learner_spin_ns,worker_doze_ns,worker_spin_ns",
                         [(0, 0, 0), (30_000, 0, 30_000), (20_000, 20_000, 30_000)], ids=["futex", "spin", "doze"])
def test_pool_protocol_publishes_every_round_across_processes(learner_spin_ns, worker_doze_ns, worker_spin_ns):
    num_workers, rounds = 2, 20_000
    wait_ns = 10 * S  # any single wait this long is a lost wakeup
    with shared_file(4096) as (path, mm):
        buf, h, slots, values_off, results_off = _new_segment(mm, num_workers)
        values = np.frombuffer(mm, dtype=np.uint64, count=num_workers * CELL, offset=values_off)
        results = np.frombuffer(mm, dtype=np.uint64, count=num_workers * CELL, offset=results_off)
        workers = ffi.new("uint32_t[]", list(range(num_workers)))
        draws = np.random.default_rng(3).integers(0, 2**63, size=(rounds, num_workers), dtype=np.uint64).tolist()
        children = []
        try:
            for w in range(num_workers):
                children.append(spawn(POOL_WORKER, path, os.getpid(), w, worker_doze_ns, worker_spin_ns, wait_ns,
                                      values_off, results_off, CELL))
            target = num_workers  # one startup completion per worker
            rc = lib.rv_wait_done(h, target, 0, 0, 60 * S)
            assert rc == lib.RV_OK, f"workers did not start: {rc}\n{_pool_state(h, slots, num_workers, children)}"

            t0 = time.monotonic()
            for r in range(rounds):
                for w in range(num_workers):
                    values[w * CELL] = draws[r][w]
                    results[w * CELL] = 0xBADBADBADBADBAD  # a stale result cannot pass
                lib.rv_dispatch(slots, workers, num_workers, lib.RV_CMD_STEP, r)
                target += num_workers
                rc = lib.rv_wait_done(h, target, 0, learner_spin_ns, wait_ns)
                if rc != lib.RV_OK:
                    pytest.fail(f"round {r}: rv_wait_done -> {rc} (1=RV_TIMEOUT: lost wakeup?)\n"
                                f"{_pool_state(h, slots, num_workers, children)}")
                for w in range(num_workers):
                    v, seq = draws[r][w], slots[w].cmd_seq
                    cell = results[w * CELL: w * CELL + 4].tolist()
                    want = [(v * K + w) & MASK, r, seq, (v ^ (r * 0x9E3779B97F4A7C15) ^ seq) & MASK]
                    if cell != want:
                        pytest.fail(f"round {r} worker {w}: results {cell}, want {want}")
                    s = slots[w]
                    if s.done_seq != seq or s.status != lib.RV_STATUS_OK or s.reply_len != r ^ w:
                        pytest.fail(f"round {r} worker {w}: done_seq {s.done_seq} cmd_seq {seq} "
                                    f"status {s.status} reply_len {s.reply_len}")
            elapsed = time.monotonic() - t0

            lib.rv_dispatch(slots, workers, num_workers, lib.RV_CMD_CLOSE, 0)
            target += num_workers
            assert lib.rv_wait_done(h, target, 0, 0, wait_ns) == lib.RV_OK
            for w, child in enumerate(children):
                code, out, err = finish(child)
                assert code == 0, f"worker {w} exited with {code}: {err[-3000:]}"
                assert out.split() == ["commands", str(rounds)]
                assert slots[w].state == lib.RV_WORKER_EXITED
            assert h.done_count == target and h.error_count == 0 and h.fault_count == 0
            print(f"{rounds} rounds x {num_workers} workers in {elapsed:.2f} s "
                  f"({elapsed / rounds * 1e6:.1f} us/round), learner wakes {h.wake_seq}")
        finally:
            kill_all(children)
            del values, results, h, slots
            ffi.release(buf)


def test_fault_reported_by_another_process_wakes_the_sleeping_learner():
    with shared_file(4096) as (path, mm):
        buf, h, slots, _, _ = _new_segment(mm, 1)
        children = [spawn(FAULT_REPORTER, path, os.getpid(), 0.05)]
        try:
            t0 = time.monotonic()
            rc = lib.rv_wait_done(h, 1, 0, 0, 60 * S)  # nobody completes: only the fault ends it
            back = lib.rv_now_ns()
            code, out, err = finish(children[0])
            assert code == 0, err[-3000:]
            assert rc == lib.RV_FAULT, f"rv_wait_done -> {rc} after {time.monotonic() - t0:.2f} s"
            reported_at = int(out.split()[1])
            assert 0 <= back - reported_at < 5 * S, f"woke {(back - reported_at) / S:.3f} s after the report"
            assert h.fault_count == 1 and h.learner_sleeping == 0
            assert lib.rv_wait_done(h, 1, 1, 0, 20 * MS) == lib.RV_TIMEOUT  # the fault is seen now
        finally:
            kill_all(children)
            del h, slots
            ffi.release(buf)


def test_die_with_parent_reports_a_mismatched_parent():
    code = ("import os, signal, sys; from rock_vec._core import lib; "
            "sys.exit(0 if lib.rv_die_with_parent(signal.SIGKILL, os.getppid()) == 0 "
            "and lib.rv_die_with_parent(0, os.getppid() + 1) == -1 else 1)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0
