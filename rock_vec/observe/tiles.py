"""Frames tiled into one image, for ``rock-vec watch``'s window and files."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
