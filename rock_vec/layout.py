"""Where every datum of a pool lives in its segment, derived from the spaces.

A space is flattened into *leaves* (``Dict``/``Tuple`` recursively, keys in
the space's order). Each leaf gets one array in the segment with the env
index as its first axis:

- ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``: the batched
  array gymnasium itself would build (same dtype and shape);
- ``Text``: a fixed-width unicode array (``<U{max_length}``);
- any other space (``Graph``, ``Sequence``, a custom ``Space``): a bounded
  byte slot per env that carries the value through the safe codec.

The learner computes the layout, writes it into the segment as JSON (the
manifest) and workers read it back, so both sides agree on every offset
without sharing Python objects. docs/architecture.md explains the choice.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
from gymnasium import spaces

from . import codec

ALIGN = 64  # cache line: no two arrays share one


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One array of the segment, seen as ``(num_envs, *shape)`` of ``dtype``.

    ``kind`` is ``"array"`` (fixed layout), ``"text"`` (fixed-width unicode)
    or ``"codec"`` (``shape == (slot_bytes,)`` uint8 bytes plus a length).
    """

    path: tuple  # keys/indices from the space's root
    kind: str
    dtype: str
    shape: tuple

    def describe(self) -> str:
        return "".join(f"[{p!r}]" for p in self.path)


def leaves_of(space: spaces.Space, codec_bytes: int, path: tuple = ()) -> list[Leaf]:
    """Flattens ``space`` into leaves, in a fixed order."""
    if isinstance(space, spaces.Dict):
        return [leaf for key, sub in space.spaces.items() for leaf in leaves_of(sub, codec_bytes, path + (key,))]
    if isinstance(space, spaces.Tuple):
        return [leaf for i, sub in enumerate(space.spaces) for leaf in leaves_of(sub, codec_bytes, path + (i,))]
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return [Leaf(path, "array", np.dtype(space.dtype).str, tuple(space.shape))]
    if isinstance(space, spaces.Text):
        return [Leaf(path, "text", np.dtype(f"<U{space.max_length}").str, ())]
    return [Leaf(path, "codec", "|u1", (codec_bytes,))]


class Arena:
    """Hands out 64-byte-aligned byte ranges in declaration order."""

    def __init__(self, start: int):
        self.size = start
        self.arrays: dict[str, dict] = {}

    def add(self, name: str, dtype: str, shape: tuple) -> None:
        offset = -(-self.size // ALIGN) * ALIGN
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        self.arrays[name] = {"offset": offset, "dtype": dtype, "shape": list(shape)}
        self.size = offset + max(nbytes, 1)


def plan_outputs(arena: Arena, prefix: str, obs_leaves: list[Leaf], rows: int, info_bytes: int) -> None:
    """Declares one set of output arrays of ``rows`` rows: observations,
    SAME_STEP final observations (``fobs``), rewards, flags and infos."""
    for name in ("obs", "fobs"):
        for i, leaf in enumerate(obs_leaves):
            arena.add(f"{prefix}{name}{i}", leaf.dtype, (rows, *leaf.shape))
            if leaf.kind == "codec":
                arena.add(f"{prefix}{name}{i}.len", "<u4", (rows,))
    arena.add(f"{prefix}rew", "<f8", (rows,))
    arena.add(f"{prefix}term", "|b1", (rows,))
    arena.add(f"{prefix}trunc", "|b1", (rows,))
    arena.add(f"{prefix}info.len", "<u4", (rows,))
    arena.add(f"{prefix}info", "|u1", (rows, info_bytes))


def plan_arrays(
    arena: Arena,
    obs_leaves: list[Leaf],
    act_leaves: list[Leaf],
    num_envs: int,
    num_workers: int,
    info_bytes: int,
    mailbox_bytes: int,
) -> None:
    """Declares the step arrays (a row per env), the actions and the mailboxes."""
    plan_outputs(arena, "", obs_leaves, num_envs, info_bytes)
    for i, leaf in enumerate(act_leaves):
        arena.add(f"act{i}", leaf.dtype, (num_envs, *leaf.shape))
        if leaf.kind == "codec":
            arena.add(f"act{i}.len", "<u4", (num_envs,))
    arena.add("mailbox", "|u1", (num_workers, mailbox_bytes))


def plan_async_arrays(arena: Arena, obs_leaves: list[Leaf], rows: int, blocks: int, num_workers: int,
                      ring_bytes: int, info_bytes: int) -> None:
    """Declares the async output ring (``rows`` rows in ``blocks`` blocks),
    its fill counters (one per cache line) and each worker's ring of env ids.
    tmpfs allocates pages on first touch: a pool that never uses the async
    API pays no memory for them."""
    plan_outputs(arena, "a.", obs_leaves, rows, info_bytes)
    arena.add("a.env_id", "<i4", (rows,))
    arena.add("a.err", "|b1", (rows,))
    arena.add("a.fill", "<u4", (blocks, ALIGN // 4))
    arena.add("rings", "|u1", (num_workers, -(-ring_bytes // ALIGN) * ALIGN))


def array_views(buffer, arrays: dict[str, dict]) -> dict[str, np.ndarray]:
    """Numpy views of every manifest array over the mapped segment."""
    return {
        name: np.ndarray(tuple(a["shape"]), np.dtype(a["dtype"]), buffer, a["offset"])
        for name, a in arrays.items()
    }


# ---- building values from leaves (learner) and leaves from values (worker) ----


def _assemble(space: spaces.Space, parts: list, pos: list) -> Any:
    """Rebuilds the nested structure of ``space`` from flat ``parts``."""
    if isinstance(space, spaces.Dict):
        return {key: _assemble(sub, parts, pos) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_assemble(sub, parts, pos) for sub in space.spaces)
    pos[0] += 1
    return parts[pos[0] - 1]


def assemble(space: spaces.Space, parts: list) -> Any:
    return _assemble(space, parts, [0])


def _leaf_values(space: spaces.Space, value: Any, out: list) -> None:
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            _leaf_values(sub, value[key], out)
    elif isinstance(space, spaces.Tuple):
        for sub, item in zip(space.spaces, value, strict=True):
            _leaf_values(sub, item, out)
    else:
        out.append(value)


def leaf_values(space: spaces.Space, value: Any) -> list:
    """The leaves of one (unbatched) value of ``space``, in leaf order."""
    out: list = []
    _leaf_values(space, value, out)
    return out


class LeafIO:
    """Reads and writes values of one space through its leaf arrays.

    Both sides use it: the learner for batched observations (read) and
    actions (write), a worker for one env's action (read) and observation
    (write).
    """

    def __init__(self, space: spaces.Space, leaves: list[Leaf], views: dict, prefix: str):
        self.space = space
        self.leaves = leaves
        self.arrays = [views[f"{prefix}{i}"] for i in range(len(leaves))]
        self.lengths = [views.get(f"{prefix}{i}.len") for i in range(len(leaves))]
        self.leaf_spaces = _leaf_spaces(space)
        self.single = len(leaves) == 1 and leaves[0].path == ()
        self.simple = all(leaf.kind == "array" for leaf in leaves)
        self.batch_views = assemble(space, self.arrays) if self.simple else None

    # -- one env (worker side) --

    def write_one(self, i: int, value: Any) -> None:
        if self.single and self.simple:
            self.arrays[0][i] = value
            return
        for leaf, leaf_space, array, length, item in zip(
            self.leaves, self.leaf_spaces, self.arrays, self.lengths, leaf_values(self.space, value)
        ):
            if leaf.kind == "codec":  # a space with no fixed layout: plain data only
                what = f"observation{leaf.describe()} of env {i} (space {leaf_space})"
                length[i] = codec.encode_into(item, array[i], 0, what=what)
            else:
                array[i] = item

    def read_one(self, i: int) -> Any:
        if self.single and self.simple:
            item = self.arrays[0][i]
            return item.copy() if isinstance(item, np.ndarray) else item
        parts = []
        for leaf, array, length in zip(self.leaves, self.arrays, self.lengths):
            if leaf.kind == "codec":
                parts.append(codec.decode(array[i, : length[i]]))
            elif leaf.kind == "text":
                parts.append(str(array[i]))
            else:
                item = array[i]
                parts.append(item.copy() if isinstance(item, np.ndarray) else item)
        return assemble(self.space, parts)

    # -- the whole batch (learner side) --

    def read_batch(self, copy: bool, rows: slice | None = None) -> Any:
        """The batched value of ``rows`` (all by default), as gymnasium's
        ``concatenate`` would build it; views into the segment unless ``copy``."""
        if rows is None and self.simple:
            if not copy:
                return self.batch_views
            if self.single:
                return self.arrays[0].copy()
            return assemble(self.space, [a.copy() for a in self.arrays])
        rows = slice(None) if rows is None else rows
        parts = []
        for leaf, array, length in zip(self.leaves, self.arrays, self.lengths):
            if leaf.kind == "codec":
                parts.append(tuple(codec.decode(array[i, : length[i]]) for i in range(len(array))[rows]))
            elif leaf.kind == "text":
                parts.append(tuple(array[rows].tolist()))
            else:
                parts.append(array[rows].copy() if copy else array[rows])
        return assemble(self.space, parts)

    def write_rows(self, rows: np.ndarray, parts: list) -> None:
        """Writes validated batched leaves into the given env rows (async send)."""
        for leaf, array, length, part in zip(self.leaves, self.arrays, self.lengths, parts):
            if leaf.kind == "codec":
                for i, item in zip(rows.tolist(), part):
                    length[i] = codec.encode_into(item, array[i], 0, what=f"action{leaf.describe()} of env {i}")
            else:
                array[rows] = part

    def write_batch(self, parts: list) -> None:
        """Writes already-validated batched leaves (see ``action_validator``)."""
        if self.single and self.simple:
            np.copyto(self.arrays[0], parts[0], casting="unsafe")
            return
        for leaf, array, length, part in zip(self.leaves, self.arrays, self.lengths, parts):
            if leaf.kind == "codec":
                for i, item in enumerate(part):
                    length[i] = codec.encode_into(item, array[i], 0, what=f"action{leaf.describe()} of env {i}")
            else:
                np.copyto(array, part, casting="unsafe")


# ---- validating a batch of actions before anything is sent ----


def _check_leaf(space: spaces.Space, leaf: Leaf, value: Any, num_envs: int) -> Any:
    where = f"action{leaf.describe()}" if leaf.path else "action batch"
    if leaf.kind == "codec" or leaf.kind == "text":
        items = list(value) if not isinstance(value, (str, bytes)) else None
        if items is None or len(items) != num_envs:
            raise ValueError(f"{where} must hold one value per env ({num_envs}), got {value!r:.80}")
        for i, item in enumerate(items):
            if not space.contains(item):
                raise ValueError(f"action{leaf.describe() if leaf.path else ''} for env {i} is {item!r:.80}, "
                                 f"which is not in {space}")
        return items
    array = np.asarray(value)
    expected = (num_envs, *leaf.shape)
    if array.shape != expected:
        hint = ""
        if array.ndim >= 1 and array.shape[0] != num_envs:
            hint = f" (the pool has {num_envs} envs, the batch has {array.shape[0]} rows)"
        raise ValueError(f"{where} has shape {array.shape}, expected {expected}{hint}")
    target = np.dtype(leaf.dtype)
    if array.dtype != target and not np.can_cast(array.dtype, target, casting="same_kind"):
        raise TypeError(
            f"{where} has dtype {array.dtype}, which cannot be cast safely to {space}'s dtype {target}"
        )
    if isinstance(space, spaces.Discrete):
        bad = (array < space.start) | (array >= space.start + space.n)
    elif isinstance(space, spaces.MultiDiscrete):
        bad = (array < space.start) | (array >= space.start + space.nvec)
    elif isinstance(space, spaces.MultiBinary):
        bad = (array != 0) & (array != 1)
    else:
        return array
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(num_envs, -1).any(axis=1))[0])
        raise ValueError(f"action{leaf.describe() if leaf.path else ''} for env {i} is "
                         f"{array[i].tolist()!r}, outside {space}")
    return array


def _single_array_validator(space: spaces.Space, leaf: Leaf, num_envs: int) -> Callable[[Any], list]:
    """The common case (one Box/Discrete/... leaf), checked with the fewest
    numpy calls; anything unusual falls back to the full ``_check_leaf``."""
    shape, dtype = (num_envs, *leaf.shape), np.dtype(leaf.dtype)
    bounds = None
    if isinstance(space, spaces.Discrete):
        bounds = (int(space.start), int(space.start + space.n - 1))

    def check(actions: Any) -> list:
        array = actions if type(actions) is np.ndarray else np.asarray(actions)
        if array.shape != shape or (array.dtype != dtype and array.dtype.kind not in "iu"):
            return [_check_leaf(space, leaf, array, num_envs)]
        if bounds is not None and (array.min() < bounds[0] or array.max() > bounds[1]):
            return [_check_leaf(space, leaf, array, num_envs)]
        if bounds is None and array.dtype != dtype:
            return [_check_leaf(space, leaf, array, num_envs)]
        return [array]

    return check


def _leaf_spaces(space: spaces.Space) -> list[spaces.Space]:
    if isinstance(space, spaces.Dict):
        return [leaf for sub in space.spaces.values() for leaf in _leaf_spaces(sub)]
    if isinstance(space, spaces.Tuple):
        return [leaf for sub in space.spaces for leaf in _leaf_spaces(sub)]
    return [space]


def _batched_leaf_values(space: spaces.Space, value: Any, path: tuple, out: list) -> None:
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict) or set(value) != set(space.spaces):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(
                f"action{''.join(f'[{p!r}]' for p in path)} must be a dict with keys "
                f"{sorted(space.spaces)}, got {got}"
            )
        for key, sub in space.spaces.items():
            _batched_leaf_values(sub, value[key], path + (key,), out)
    elif isinstance(space, spaces.Tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(space.spaces):
            raise ValueError(
                f"action{''.join(f'[{p!r}]' for p in path)} must be a tuple of {len(space.spaces)} batches"
            )
        for i, (sub, item) in enumerate(zip(space.spaces, value)):
            _batched_leaf_values(sub, item, path + (i,), out)
    else:
        out.append(value)


def action_validator(space: spaces.Space, leaves: list[Leaf], num_envs: int) -> Callable[[Any], list]:
    """Returns ``check(actions) -> leaf batches`` that raises on bad input.

    Errors name the problem and, where it is one env's value, the env index:
    wrong batch length or shape, a dtype that cannot be cast safely, a value
    outside a Discrete/MultiDiscrete/MultiBinary space, a malformed Dict.
    """
    leaf_spaces = _leaf_spaces(space)
    if len(leaves) == 1 and leaves[0].path == () and isinstance(space, (spaces.Box, spaces.Discrete)):
        return _single_array_validator(space, leaves[0], num_envs)

    def check(actions: Any) -> list:
        parts: list = []
        _batched_leaf_values(space, actions, (), parts)
        return [_check_leaf(s, leaf, v, num_envs) for s, leaf, v in zip(leaf_spaces, leaves, parts)]

    return check
