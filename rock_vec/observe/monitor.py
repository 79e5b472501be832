"""Reading a running pool from another process, read-only (``rock-vec top``).

A pool's listing (``registry``) names its learner and the descriptor of its
segment; the segment's name is unlinked once workers hold it, so a monitor
maps it through ``/proc/<learner>/fd/<fd>`` (the same user only: the kernel
checks, as for ptrace), read-only: it cannot write into the pool, and it
takes no lock and wakes nobody, so the pool never notices it.

What it reads is what the pool keeps anyway: per worker, the counters of its
slot (env steps, time inside commands, state, heartbeat, restarts, exit);
per env, the finished episodes and the last one's return and length
(``m.`` arrays, written when an episode ends). Rates come from two
snapshots. The numbers are a worker's own and may be torn or stale; they
are shown, never trusted (a monitor checks nothing it does not print).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import lib
from ..segment import registry
from ..segment.layout import read_text
from ..segment.mapping import Segment

STATES = {0: "starting", 1: "ready", 2: "exited", 3: "dead"}


@dataclass(frozen=True)
class WorkerCounters:
    index: int
    pid: int
    envs: tuple[int, int]
    state: str
    env_steps: int
    busy_ns: int
    heartbeat_age_s: float
    restarts: int
    exit_code: int
    exit_signal: int
    errors: int  # commands that raised in this worker
    last_error: str  # the last one, as the worker wrote it ("" if none)


@dataclass(frozen=True)
class Snapshot:
    """One reading of a pool: when (monotonic ns), its workers, its envs' episodes."""

    taken_ns: int
    workers: tuple[WorkerCounters, ...]
    episodes: np.ndarray
    last_return: np.ndarray
    last_length: np.ndarray
    learner_heartbeat_age_s: float
    learner_steps: int  # env steps of the learner's own share
    learner_busy_ns: int


def attach_listed(entry: dict, read_only: bool = True) -> Segment:
    """Maps the segment of the pool a registry ``entry`` lists, through its
    learner's descriptor (``read_only``: a monitor's mapping; ``rock-vec
    watch`` writes its frame requests).

    Raises:
        ValueError: the pool is gone, or the listing does not lead to its
            segment (another process took the descriptor), naming the pool.
        PermissionError: the pool belongs to another user.
    """
    pid, fd = entry["learner_pid"], entry.get("segment_fd")
    if fd is None:
        raise ValueError(f"pool {entry['pool']} was started by a rock_vec that does not list its segment")
    try:
        seg = Segment.attach(f"/proc/{pid}/fd/{fd}", read_only=read_only)
    except FileNotFoundError:
        raise ValueError(f"pool {entry['pool']} is gone (learner {pid})") from None
    except ValueError as exc:
        raise ValueError(f"pool {entry['pool']}: its listed descriptor is no rock_vec segment ({exc})") from None
    if seg.header.learner_pid != pid or seg.header.num_envs != entry["num_envs"]:
        seg.close()
        raise ValueError(f"pool {entry['pool']}: the segment behind its descriptor is another pool's")
    return seg


class PoolMonitor:
    """A read-only mapping of the pool a registry ``entry`` lists.

    Raises:
        ValueError: the pool is gone, or the listing does not lead to its
            segment (another process took the descriptor), naming the pool.
        PermissionError: the pool belongs to another user.
    """

    def __init__(self, entry: dict):
        self.entry = entry
        self.seg = attach_listed(entry, read_only=True)
        self.ranges = {w["index"]: tuple(w["envs"]) for w in entry["workers"]}

    def snapshot(self) -> Snapshot:
        seg, now = self.seg, lib.rv_now_ns()
        workers = []
        a = seg.arrays
        for w in range(seg.header.num_workers):
            slot = seg.slot(w)
            beat = slot.heartbeat_ns
            workers.append(WorkerCounters(
                index=w, pid=int(slot.host_pid), envs=self.ranges.get(w, (0, 0)),
                state=STATES.get(int(slot.state), f"unknown ({int(slot.state)})"), env_steps=int(slot.env_steps),
                busy_ns=int(slot.busy_ns), heartbeat_age_s=max(0, now - beat) / 1e9 if beat else float("nan"),
                restarts=int(slot.restarts), exit_code=int(slot.exit_code), exit_signal=int(slot.exit_signal),
                errors=int(a["m.errors"][w]),
                last_error=read_text(a["m.last_error"][w])))
        beat = seg.header.learner_heartbeat_ns
        return Snapshot(now, tuple(workers), a["m.episodes"].copy(), a["m.last_return"].copy(),
                        a["m.last_length"].copy(), max(0, now - beat) / 1e9 if beat else float("nan"),
                        int(a["m.learner"][0]), int(a["m.learner"][1]))

    def close(self) -> None:
        self.seg.close()


def read(entry: dict) -> Snapshot | None:
    """One snapshot of the pool ``entry`` lists, or None when it cannot be
    read (closed meanwhile, another user's, or listed by an older rock_vec)."""
    try:
        watch = PoolMonitor(entry)
    except (ValueError, PermissionError, OSError):
        return None
    try:
        return watch.snapshot()
    finally:
        watch.close()


@dataclass(frozen=True)
class WorkerRates:
    """A worker between two snapshots."""

    counters: WorkerCounters
    steps_per_s: float
    step_us: float  # time inside commands per env step
    wait_share: float  # share of the interval spent waiting for commands


def rates(before: Snapshot, after: Snapshot) -> list[WorkerRates]:
    """Each worker's rates over the interval between two snapshots."""
    seconds = max(after.taken_ns - before.taken_ns, 1) / 1e9
    out = []
    for b, a in zip(before.workers, after.workers):
        steps = max(a.env_steps - b.env_steps, 0)
        busy = max(a.busy_ns - b.busy_ns, 0) / 1e9
        out.append(WorkerRates(a, steps / seconds, busy / steps * 1e6 if steps else float("nan"),
                               min(1.0, max(0.0, 1 - busy / seconds))))
    return out


def learner_rate(before: Snapshot, after: Snapshot) -> tuple[float, float]:
    """The learner's share between two snapshots: env steps/s, us per env step."""
    seconds = max(after.taken_ns - before.taken_ns, 1) / 1e9
    steps = max(after.learner_steps - before.learner_steps, 0)
    busy = max(after.learner_busy_ns - before.learner_busy_ns, 0) / 1e3
    return steps / seconds, busy / steps if steps else float("nan")


def finished_since(before: Snapshot, after: Snapshot) -> tuple[int, np.ndarray]:
    """Episodes finished between two snapshots, and the returns of the envs
    whose last episode ended in between."""
    ended = after.episodes > before.episodes
    return int((after.episodes - before.episodes).sum()), after.last_return[ended]


def pool_entry(pool: str | None) -> dict:
    """The listing of the pool ``pool`` (an id or its prefix; None: the only
    live one).

    Raises:
        ValueError: none, or several, naming what there is.
    """
    live = [e for e in registry.entries() if not e["stale"]]
    if pool is not None:
        live = [e for e in live if e["pool"].startswith(pool)]
    if len(live) == 1:
        return live[0]
    if not live:
        raise ValueError("no running rock_vec pool" + (f" matches {pool!r}" if pool else "") + " (rock-vec ps lists them)")
    names = ", ".join(f"{e['pool']} (learner {e['learner_pid']})" for e in live)
    raise ValueError(f"{len(live)} pools are running: {names}; name one")
