"""Frames of chosen envs for ``rock-vec watch``, rendered where each env
lives and passed through the pool's segment, while the pool trains on.

The segment has ``SLOTS`` frame slots. A watcher (another process, mapping
the segment through ``/proc/<learner>/fd``) asks for an env's frame by
writing the env into a slot and bumping the slot's request count, then the
pool-wide ``w.generation``. Whoever steps that env (a worker, or the
learner for its own share) notices the new generation at its next step (one
load per batch), calls the env's ``render()`` between two steps, writes the
frame, then the slot's answer count. Nothing is asked of the learner, and a
pool nobody watches pays that one load.

A worker is untrusted: what it writes is checked on the watcher's side
(``FrameWatcher``) before it is read, and a bad slot gives a message, not a
crash. A frame larger than a slot is sent subsampled (every k-th pixel).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Sequence

import numpy as np

#: Envs one watcher can watch at once.
SLOTS = 16
#: Bytes of one frame slot (1024 x 682 RGB fits; larger frames are subsampled).
FRAME_BYTES = 2 << 20
#: Bytes of a slot's message when there is no frame.
NOTE_BYTES = 240

OK, NOT_RGB_ARRAY, RENDER_RAISED, NOT_AN_IMAGE = 1, 2, 3, 4


def plan(arena) -> None:
    """Declares the frame slots. tmpfs allocates pages on first touch: a
    pool nobody watches pays no memory for them."""
    arena.add("w.generation", "<u4", (1,))
    arena.add("w.want", "<u4", (SLOTS,))  # env index + 1; 0: the slot is free
    arena.add("w.asked", "<u4", (SLOTS,))  # requests made in the slot (the watcher's count)
    arena.add("w.done", "<u4", (SLOTS,))  # requests answered (the host's count)
    arena.add("w.status", "<u4", (SLOTS,))
    arena.add("w.shape", "<u4", (SLOTS, 3))
    arena.add("w.note", "|u1", (SLOTS, NOTE_BYTES))
    arena.add("w.frame", "|u1", (SLOTS, FRAME_BYTES))


class FrameDesk:
    """A host's side: answers the requests for the envs ``lo..hi-1`` it steps."""

    def __init__(self, arrays: dict, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.generation = arrays["w.generation"]
        self.want, self.asked, self.done = arrays["w.want"], arrays["w.asked"], arrays["w.done"]
        self.status, self.shape, self.note, self.frame = (arrays["w.status"], arrays["w.shape"], arrays["w.note"],
                                                          arrays["w.frame"])
        self.seen = 0  # the generation last served: a new host serves what is pending

    def pending(self) -> bool:
        return self.generation[0] != self.seen

    def serve(self, envs: list) -> None:
        """Renders every requested env of this host into its slot."""
        self.seen = int(self.generation[0])
        for s in range(SLOTS):
            i = int(self.want[s]) - 1
            asked = self.asked[s]
            if self.lo <= i < self.hi and asked != self.done[s]:
                self._answer(s, i, envs[i - self.lo])
                self.done[s] = asked  # last: the watcher reads the slot once it sees this

    def _answer(self, s: int, i: int, env) -> None:
        mode = getattr(env, "render_mode", None)
        if mode != "rgb_array":
            self._refuse(s, NOT_RGB_ARRAY, f"env {i} renders in mode {mode!r}, not 'rgb_array': build the pool "
                                           "with render_mode='rgb_array' to watch it")
            return
        try:
            frame = np.asarray(env.render())
        except Exception as exc:  # the env's own error, reported to the watcher; the pool goes on
            self._refuse(s, RENDER_RAISED, f"env {i}'s render() raised {type(exc).__name__}: {exc}")
            return
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (3, 4) or 0 in frame.shape:
            self._refuse(s, NOT_AN_IMAGE, f"env {i}'s render() gave a {frame.dtype} array of shape {frame.shape}, "
                                          "not an (H, W, 3) uint8 image")
            return
        stride = 1
        while -(-frame.shape[0] // stride) * -(-frame.shape[1] // stride) * 3 > FRAME_BYTES:
            stride += 1
        frame = np.ascontiguousarray(frame[::stride, ::stride, :3])
        self.frame[s, : frame.nbytes] = frame.reshape(-1)
        self.shape[s] = frame.shape
        self.status[s] = OK

    def _refuse(self, s: int, status: int, note: str) -> None:
        text = note.encode("utf-8")[: NOTE_BYTES - 1]
        self.note[s, : len(text)] = np.frombuffer(text, np.uint8)
        self.note[s, len(text)] = 0
        self.status[s] = status


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
        from .monitor import attach_listed

        envs = [int(i) for i in envs]
        if not envs or len(envs) > SLOTS:
            raise ValueError(f"watch 1 to {SLOTS} envs at once, got {len(envs)}")
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
        if status != OK:
            note = self.note[s].tobytes().split(b"\0", 1)[0].decode("utf-8", "replace")
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


def grid(frames: Sequence[np.ndarray | None], columns: int | None = None, gap: int = 4) -> np.ndarray:
    """Tiles frames (None: a blank tile) into one RGB image, row-major, each
    tile the largest frame's size, frames centred in their tiles."""
    shown = [f for f in frames if f is not None]
    h = max((f.shape[0] for f in shown), default=1)
    w = max((f.shape[1] for f in shown), default=1)
    cols = columns or int(np.ceil(np.sqrt(len(frames))))
    rows = -(-len(frames) // cols)
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 32, np.uint8)
    for k, f in enumerate(frames):
        if f is None:
            continue
        y = (k // cols) * (h + gap) + (h - f.shape[0]) // 2
        x = (k % cols) * (w + gap) + (w - f.shape[1]) // 2
        out[y : y + f.shape[0], x : x + f.shape[1]] = f
    return out
