"""Frames for ``rock-vec watch``, the host's side: whoever steps an env (a
worker, or the learner for its own share) renders it between two steps
when a watcher asks, and writes the frame into the slot the watcher chose
(the ``w.`` arrays, ``rock_vec.segment.layout``).

A watcher writes the env into a slot and bumps the slot's request count,
then the pool-wide ``w.generation``. The host notices the new generation at
its next step (one load per batch), calls the env's ``render()``, writes the
frame, then the slot's answer count. Nothing is asked of the learner, and a
pool nobody watches pays that one load. A frame larger than a slot is sent
subsampled (every k-th pixel).
"""

from __future__ import annotations

import numpy as np

from ..segment.layout import (
    FRAME_BYTES,
    FRAME_NOT_AN_IMAGE,
    FRAME_NOT_RGB_ARRAY,
    FRAME_OK,
    FRAME_RENDER_RAISED,
    FRAME_SLOTS,
    write_text,
)


class FrameServer:
    """Answers ``rock-vec watch``'s frame requests for the envs ``lo..hi-1`` that its host steps."""

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
        for s in range(FRAME_SLOTS):
            i = int(self.want[s]) - 1
            asked = self.asked[s]
            if self.lo <= i < self.hi and asked != self.done[s]:
                self._answer(s, i, envs[i - self.lo])
                self.done[s] = asked  # last: the watcher reads the slot once it sees this

    def _answer(self, s: int, i: int, env) -> None:
        mode = getattr(env, "render_mode", None)
        if mode != "rgb_array":
            self._refuse(s, FRAME_NOT_RGB_ARRAY, f"env {i} renders in mode {mode!r}, not 'rgb_array': build the pool "
                                           "with render_mode='rgb_array' to watch it")
            return
        try:
            frame = np.asarray(env.render())
        except Exception as exc:  # the env's own error, reported to the watcher; the pool goes on
            self._refuse(s, FRAME_RENDER_RAISED, f"env {i}'s render() raised {type(exc).__name__}: {exc}")
            return
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (3, 4) or 0 in frame.shape:
            self._refuse(s, FRAME_NOT_AN_IMAGE, f"env {i}'s render() gave a {frame.dtype} array of shape {frame.shape}, "
                                          "not an (H, W, 3) uint8 image")
            return
        stride = 1
        while -(-frame.shape[0] // stride) * -(-frame.shape[1] // stride) * 3 > FRAME_BYTES:
            stride += 1
        frame = np.ascontiguousarray(frame[::stride, ::stride, :3])
        self.frame[s, : frame.nbytes] = frame.reshape(-1)
        self.shape[s] = frame.shape
        self.status[s] = FRAME_OK

    def _refuse(self, s: int, status: int, note: str) -> None:
        write_text(self.note[s], note)
        self.status[s] = status
