"""Infos batched exactly as gymnasium's SyncVectorEnv batches them.

Each env's infos of a step travel through the codec as a list of dicts
(an empty info travels as nothing at all); the learner adds them, row by row
in env order, with gymnasium's own ``VectorEnv._add_info``, so keys, ``_key``
masks and dtypes come out identical.
"""

from __future__ import annotations

import numpy as np

from .segment import codec
from .segment.layout import LeafIO


def batch_infos(add_info, info: np.ndarray, lengths: np.ndarray, rows: slice, final_obs: LeafIO | None = None,
                done: np.ndarray | None = None) -> dict:
    """The batched info dict of ``rows``, built with gymnasium's ``_add_info``
    in row order exactly as SyncVectorEnv builds it. Rows whose info length is
    0 had an empty info. With ``done`` (SAME_STEP), an ended row adds
    ``{"final_obs", "final_info"}`` (its final obs from ``final_obs``, with
    the leaves the worker sent in the info: ``LeafIO.write_exact``), then
    its reset info."""
    infos: dict = {}
    lens = lengths[rows]
    if done is None:
        raw = lens.tobytes()
        if raw == bytes(len(raw)):  # a memcmp with zeros: a third of a ufunc reduce's cost here
            return infos  # the common case (CartPole): no env had an info
    visit = lens != 0 if done is None else (lens != 0) | done[rows]
    for k in np.flatnonzero(visit).tolist():
        row, n = rows.start + k, int(lens[k])
        items = codec.decode(info[row, :n]) if n else [{}, {}]
        if done is not None and done[row]:
            final = final_obs.read_one(row, items[2] if len(items) > 2 else None)
            infos = add_info(infos, {"final_obs": final, "final_info": items[0]}, k)
            items = items[1:]
        infos = add_info(infos, items[0], k)
    return infos


def merge_batched(merged: dict, part: dict, offset: int, num_envs: int) -> dict:
    """Adds ``part``, the batched infos of envs ``offset..`` (another
    vectorizer's, built by ``_add_info``), into ``merged``, the batched infos
    of all ``num_envs`` envs, as if ``_add_info`` had added each env in turn:
    an array is made where its key first appears, of the dtype and item shape
    the first env with that key gave it (so the first part that has it), and
    every later part's values are cast into it, as ``_add_info``'s
    assignments cast them. Returns ``merged``."""
    for key, value in part.items():
        if key.startswith("_") and key[1:] in part:
            continue  # a mask: with its key, below
        n = len(part[f"_{key}"])
        if isinstance(value, dict):
            merged[key] = merge_batched(merged.get(key, {}), value, offset, num_envs)
        else:
            if key not in merged:
                merged[key] = (np.full(num_envs, None, dtype=object) if value.dtype == object else
                               np.zeros((num_envs, *value.shape[1:]), dtype=value.dtype))
            merged[key][offset:offset + n] = value
        mask = merged.setdefault(f"_{key}", np.zeros(num_envs, dtype=np.bool_))
        mask[offset:offset + n] = part[f"_{key}"]
    return merged
