"""Frames of chosen envs of a running pool, the watcher's side (``rock-vec
watch``): another process maps the pool's segment through
``/proc/<learner>/fd``, asks for frames in the ``w.`` slots and reads what
the envs' hosts render (``rock_vec.worker.frames``).

A worker is untrusted: what it writes is checked here before it is read,
and a bad slot gives a message, not a crash.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Sequence

import numpy as np

from ..segment.layout import FRAME_BYTES, FRAME_OK, FRAME_SLOTS, read_text
from .monitor import attach_listed


class FrameWatcher:
    """The watcher's side: frames of ``envs`` of the pool a registry
    ``entry`` lists. One watcher per pool at a time.

    Raises:
        ValueError: the pool is gone or is not a rock_vec pool, an env
            index is out of range, too many envs, or another watcher is
            attached.
        PermissionError: the pool belongs to another user.
    """

    def __init__(self, entry: dict, envs: Sequence[int]):
        envs = [int(i) for i in envs]
        if not envs or len(envs) > FRAME_SLOTS:
            raise ValueError(f"watch 1 to {FRAME_SLOTS} envs at once, got {len(envs)}")
        self.seg = attach_listed(entry, read_only=False)
        try:
            num_envs = self.seg.header.num_envs
            bad = [i for i in envs if not 0 <= i < num_envs]
            if bad:
                raise ValueError(f"env index {bad[0]} is out of range: pool {entry['pool']} has {num_envs} envs")
            if "w.generation" not in self.seg.arrays:
                raise ValueError(f"pool {entry['pool']} was started by a rock_vec without frame slots")
            try:  # on the segment file itself: the learner never locks it, a second watcher does
                fcntl.flock(self.seg.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"another rock-vec watch is attached to pool {entry['pool']}") from None
        except BaseException:
            self.seg.close()
            raise
        self.envs = envs
        a = self.seg.arrays
        self.generation, self.want, self.asked, self.done = a["w.generation"], a["w.want"], a["w.asked"], a["w.done"]
        self.status, self.shape, self.note, self.frame = a["w.status"], a["w.shape"], a["w.note"], a["w.frame"]
        self.want[:] = 0
        for s, i in enumerate(envs):
            self.want[s] = i + 1

    def grab(self, timeout: float = 5.0) -> list[np.ndarray | str]:
        """One frame per watched env, rendered at its next step: an
        (H, W, 3) uint8 array, or a message saying why there is none."""
        slots = range(len(self.envs))
        for s in slots:
            self.asked[s] += 1
        self.generation[0] += 1
        deadline = time.monotonic() + timeout
        while any(self.done[s] != self.asked[s] for s in slots) and time.monotonic() < deadline:
            time.sleep(0.002)
        return [self._read(s, timeout) for s in slots]

    def _read(self, s: int, timeout: float) -> np.ndarray | str:
        i = self.envs[s]
        if self.done[s] != self.asked[s]:
            return f"env {i}: no frame within {timeout:g} s (is the learner stepping the pool?)"
        status = int(self.status[s])
        if status != FRAME_OK:
            note = read_text(self.note[s])
            return note or f"env {i}: no frame (status {status})"
        h, w, c = (int(x) for x in self.shape[s])
        if c != 3 or h < 1 or w < 1 or h * w * c > FRAME_BYTES:  # a worker's word, checked before use
            return f"env {i}: its host wrote a malformed frame shape ({h}, {w}, {c})"
        return self.frame[s, : h * w * c].reshape(h, w, c).copy()

    def close(self) -> None:
        if self.seg is not None:
            self.want[:] = 0
            # Unlock first: the mapping holds a duplicate of the descriptor until it is unmapped.
            fcntl.flock(self.seg.fd, fcntl.LOCK_UN)
            self.generation = self.want = self.asked = self.done = None
            self.status = self.shape = self.note = self.frame = None
            self.seg.close()
            self.seg = None

    def __enter__(self) -> "FrameWatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
