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

import collections
import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

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


#: Bytes of a text slot: a worker's last error (``m.last_error``), or a frame
#: slot's message when it holds no frame (``w.note``). UTF-8, NUL-padded.
TEXT_BYTES = 240

#: Frame slots of ``rock-vec watch`` (``w.``): envs one watcher can watch at once.
FRAME_SLOTS = 16
#: Bytes of one frame slot (1024 x 682 RGB fits; larger frames are sent subsampled).
FRAME_BYTES = 2 << 20
#: A frame slot's ``w.status``, written by the env's host: a frame, or why there is none.
FRAME_OK, FRAME_NOT_RGB_ARRAY, FRAME_RENDER_RAISED, FRAME_NOT_AN_IMAGE = 1, 2, 3, 4


def write_text(slot: np.ndarray, text: str) -> None:
    """Writes ``text`` into a text slot: the whole UTF-8 characters that fit
    before a closing NUL, the rest zeroed."""
    raw = text.encode("utf-8")[: len(slot) - 1].decode("utf-8", "ignore").encode("utf-8")
    slot[: len(raw)] = np.frombuffer(raw, np.uint8)
    slot[len(raw):] = 0


def read_text(slot: np.ndarray) -> str:
    """A text slot's text, up to its first NUL. Its writer is untrusted: bytes
    that are not UTF-8 are replaced, never raised on."""
    return slot.tobytes().split(b"\0", 1)[0].decode("utf-8", "replace")


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


def plan_outputs(arena: Arena, prefix: str, obs_leaves: list[Leaf], rows: int, info_bytes: int,
                 generations: int | None = None) -> None:
    """Declares one set of output arrays of ``rows`` rows: observations,
    SAME_STEP final observations (``fobs``), rewards, flags and infos. With
    ``generations`` the observations have that many copies, a leading axis
    (see ``rock_vec.engine.handouts``)."""
    for name in ("obs", "fobs"):
        axis = (generations,) if generations is not None and name == "obs" else ()
        for i, leaf in enumerate(obs_leaves):
            arena.add(f"{prefix}{name}{i}", leaf.dtype, (*axis, rows, *leaf.shape))
            if leaf.kind == "codec":
                arena.add(f"{prefix}{name}{i}.len", "<u4", (*axis, rows))
    arena.add(f"{prefix}rew", "<f8", (rows,))
    arena.add(f"{prefix}term", "|b1", (rows,))
    arena.add(f"{prefix}trunc", "|b1", (rows,))
    arena.add(f"{prefix}info.len", "<u4", (rows,))
    arena.add(f"{prefix}info", "|u1", (rows, info_bytes))


def plan_arrays(arena: Arena, obs_leaves: list[Leaf], num_envs: int, num_workers: int, info_bytes: int,
                mailbox_bytes: int, obs_generations: int) -> None:
    """Declares the step arrays (a row per env; the observations in
    ``obs_generations`` generations, the one a command writes named in
    ``obs.gen``), the mailboxes, the
    episode counters a monitor reads (``m.``: per env, written by whoever
    steps the env when an episode ends) and the frame slots of ``rock-vec
    watch`` (``w.``: a watcher asks, the env's host answers between two
    steps; see ``rock_vec.worker.frames``). tmpfs allocates pages on first
    touch: a pool nobody watches pays no memory for the frame slots."""
    plan_outputs(arena, "", obs_leaves, num_envs, info_bytes, obs_generations)
    arena.add("obs.gen", "<u4", (1,))
    arena.add("mailbox", "|u1", (num_workers, mailbox_bytes))
    arena.add("m.episodes", "<u8", (num_envs,))
    arena.add("m.last_return", "<f8", (num_envs,))
    arena.add("m.last_length", "<u8", (num_envs,))
    arena.add("m.learner", "<u8", (2,))  # the learner's share: env steps, ns spent stepping them
    arena.add("m.errors", "<u8", (num_workers,))  # commands that raised, per worker
    arena.add("m.last_error", "|u1", (num_workers, TEXT_BYTES))  # the last one, "Type: message" in UTF-8
    arena.add("w.generation", "<u4", (1,))  # bumped by a watcher after each request
    arena.add("w.want", "<u4", (FRAME_SLOTS,))  # env index + 1; 0: the slot is free
    arena.add("w.asked", "<u4", (FRAME_SLOTS,))  # requests made in the slot (the watcher's count)
    arena.add("w.done", "<u4", (FRAME_SLOTS,))  # requests answered (the host's count)
    arena.add("w.status", "<u4", (FRAME_SLOTS,))
    arena.add("w.shape", "<u4", (FRAME_SLOTS, 3))
    arena.add("w.note", "|u1", (FRAME_SLOTS, TEXT_BYTES))
    arena.add("w.frame", "|u1", (FRAME_SLOTS, FRAME_BYTES))


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


class ValueAside(NamedTuple):
    """A value ``LeafIO.write_exact`` could not lay out at all (its keys or
    items are not the space's): it travels whole, through the codec."""

    value: Any


class LeavesAside(NamedTuple):
    """What ``LeafIO.write_exact`` left out of the fixed arrays; it travels
    through the codec.

    Attributes:
        items: leaf index -> item, for leaves the arrays would give back as
            another type (a Python int, another dtype).
        skeleton: the containers, each leaf replaced by its index, when they
            are not the space's plain dict (in its key order) and tuple (an
            OrderedDict, a named tuple); None when they are.
    """

    items: dict
    skeleton: Any = None


class LeafIO:
    """Reads and writes observations of one space through its leaf arrays:
    a worker writes one env's, the learner reads the batch (or one env's
    final observation)."""

    def __init__(self, space: spaces.Space, leaves: list[Leaf], views: dict, prefix: str,
                 generation: int | None = None):
        self.space = space
        self.leaves = leaves
        pick = (lambda a: a) if generation is None else (lambda a: None if a is None else a[generation])
        self.arrays = [pick(views[f"{prefix}{i}"]) for i in range(len(leaves))]
        self.lengths = [pick(views.get(f"{prefix}{i}.len")) for i in range(len(leaves))]
        self.leaf_spaces = _leaf_spaces(space)
        self._index = {leaf.path: k for k, leaf in enumerate(leaves)}
        self.single = len(leaves) == 1 and leaves[0].path == ()
        self.simple = all(leaf.kind == "array" for leaf in leaves)
        self.batch_views = assemble(space, self.arrays) if self.simple else None

    # -- one env (worker side) --

    def write_one(self, i: int, value: Any) -> None:
        if self.single and self.simple:
            self.arrays[0][i] = value
            return
        for k, item in enumerate(leaf_values(self.space, value)):
            self._write_leaf(k, i, item)

    def write_exact(self, i: int, value: Any) -> ValueAside | LeavesAside | None:
        """Writes ``value`` so that ``read_one`` gives it back as the env
        returned it, types included (SAME_STEP final observations, which
        gymnasium hands over untouched). Leaves that the fixed arrays would
        give back with the same type (an ndarray of the leaf's dtype and
        shape, a numpy scalar of its dtype, a str; every codec leaf) are
        written there; the rest is returned, to travel through the codec
        (``LeavesAside``, or ``ValueAside`` when nothing could be laid out).
        None when everything was written."""
        if not _same_keys(self.space, value):
            return ValueAside(value)
        items: dict = {}
        for k, (leaf, item) in enumerate(zip(self.leaves, leaf_values(self.space, value))):
            if leaf.kind == "codec" or _exact_leaf(leaf, item):
                self._write_leaf(k, i, item)
            else:
                items[k] = item
        skeleton = None if _exact_structure(self.space, value) else _skeleton(self.space, value, self._index, ())
        return LeavesAside(items, skeleton) if items or skeleton is not None else None

    def _write_leaf(self, k: int, i: int, item: Any) -> None:
        leaf = self.leaves[k]
        if leaf.kind == "codec":  # a space with no fixed layout: plain data only
            what = f"observation{leaf.describe()} of env {i} (space {self.leaf_spaces[k]})"
            self.lengths[k][i] = codec.encode_into(item, self.arrays[k][i], 0, what=what)
        elif leaf.kind == "text" and len(item) > self.arrays[k].dtype.itemsize // 4:
            raise ValueError(f"observation{leaf.describe()} of env {i} is {item!r:.80}, longer than the "
                             f"max_length of {self.leaf_spaces[k]}: it would be cut")
        else:
            self.arrays[k][i] = item

    def read_one(self, i: int, aside: ValueAside | LeavesAside | None = None) -> Any:
        """Env ``i``'s value; ``aside`` is what ``write_exact`` did not write
        into the arrays, decoded from a worker's bytes.

        Raises:
            ValueError: ``aside`` is neither (a worker wrote something else).
        """
        if isinstance(aside, ValueAside):
            return aside.value
        if aside is not None and not (isinstance(aside, LeavesAside) and isinstance(aside.items, dict)):
            raise ValueError(f"env {i}'s host sent {type(aside).__name__} beside its final observation, "
                             "not what write_exact sends")
        if aside is None and self.single and self.simple:
            item = self.arrays[0][i]
            return item.copy() if isinstance(item, np.ndarray) else item
        parts = []
        for k, (leaf, array, length) in enumerate(zip(self.leaves, self.arrays, self.lengths)):
            if aside is not None and k in aside.items:
                parts.append(aside.items[k])
            elif leaf.kind == "codec":
                parts.append(codec.decode(array[i, : length[i]]))
            elif leaf.kind == "text":
                parts.append(str(array[i]))
            else:
                item = array[i]
                parts.append(item.copy() if isinstance(item, np.ndarray) else item)
        if aside is not None and aside.skeleton is not None:
            return _rebuild(self.space, aside.skeleton, parts, self._index, ())
        return assemble(self.space, parts)

    # -- the whole batch (learner side) --

    def read_batch(self, copy: bool, rows: slice | None = None, take=None) -> Any:
        """The batched value of ``rows`` (all by default), as gymnasium's
        ``concatenate`` would build it; views into the segment unless ``copy``.
        ``take(k, array) -> array``, when given, gives fixed-layout leaf
        ``k``'s array instead (``rock_vec.engine.handouts`` lends its own)."""
        if take is None and rows is None and self.simple:
            if not copy:
                return self.batch_views
            if self.single:
                return self.arrays[0].copy()
            return assemble(self.space, [a.copy() for a in self.arrays])
        take = take or ((lambda k, array: array.copy()) if copy else None)
        rows = slice(None) if rows is None else rows
        parts = []
        for k, (leaf, array, length) in enumerate(zip(self.leaves, self.arrays, self.lengths)):
            if leaf.kind == "codec":
                parts.append(tuple(codec.decode(array[i, : length[i]]) for i in range(len(array))[rows]))
            elif leaf.kind == "text":
                parts.append(tuple(array[rows].tolist()))
            else:
                parts.append(array[rows] if take is None else take(k, array[rows]))
        return assemble(self.space, parts)


def _leaf_spaces(space: spaces.Space) -> list[spaces.Space]:
    if isinstance(space, spaces.Dict):
        return [leaf for sub in space.spaces.values() for leaf in _leaf_spaces(sub)]
    if isinstance(space, spaces.Tuple):
        return [leaf for sub in space.spaces for leaf in _leaf_spaces(sub)]
    return [space]


def _exact_structure(space: spaces.Space, value: Any) -> bool:
    """``value`` is a plain dict with the space's keys in its order, or a
    plain tuple of its length, all the way down."""
    if isinstance(space, spaces.Dict):
        return (type(value) is dict and list(value) == list(space.spaces)
                and all(_exact_structure(sub, value[key]) for key, sub in space.spaces.items()))
    if isinstance(space, spaces.Tuple):
        return (type(value) is tuple and len(value) == len(space.spaces)
                and all(_exact_structure(sub, item) for sub, item in zip(space.spaces, value)))
    return True


def _same_keys(space: spaces.Space, value: Any) -> bool:
    """``value`` has the space's keys and items (in any order, in any
    mapping or sequence type)."""
    if isinstance(space, spaces.Dict):
        return (isinstance(value, Mapping) and len(value) == len(space.spaces)
                and all(key in value and _same_keys(sub, value[key]) for key, sub in space.spaces.items()))
    if isinstance(space, spaces.Tuple):
        return (isinstance(value, (tuple, list)) and len(value) == len(space.spaces)
                and all(_same_keys(sub, item) for sub, item in zip(space.spaces, value)))
    return True


def _skeleton(space: spaces.Space, value: Any, index: dict, path: tuple) -> Any:
    """``value``'s containers, in their own types and key order, with each
    leaf replaced by its leaf index (worker side)."""
    if isinstance(space, spaces.Dict):
        pairs = [(key, _skeleton(space.spaces[key], value[key], index, path + (key,))) for key in value]
        return collections.OrderedDict(pairs) if isinstance(value, collections.OrderedDict) else type(value)(pairs)
    if isinstance(space, spaces.Tuple):
        items = [_skeleton(sub, item, index, path + (i,)) for i, (sub, item) in enumerate(zip(space.spaces, value))]
        return type(value)._make(items) if hasattr(type(value), "_fields") else type(value)(items)
    return index[path]


def _rebuild(space: spaces.Space, skeleton: Any, parts: list, index: dict, path: tuple) -> Any:
    """The value a ``_skeleton`` describes, its leaves taken from ``parts``
    (learner side: the skeleton came from a worker, so it is checked)."""
    if isinstance(space, spaces.Dict):
        if type(skeleton) not in (dict, collections.OrderedDict) or set(skeleton) != set(space.spaces):
            raise codec.CodecError(f"a worker sent a malformed final observation (at {path!r})")
        return type(skeleton)((key, _rebuild(space.spaces[key], sub, parts, index, path + (key,)))
                              for key, sub in skeleton.items())
    if isinstance(space, spaces.Tuple):
        if not isinstance(skeleton, (tuple, list)) or len(skeleton) != len(space.spaces):
            raise codec.CodecError(f"a worker sent a malformed final observation (at {path!r})")
        items = [_rebuild(sub, item, parts, index, path + (i,))
                 for i, (sub, item) in enumerate(zip(space.spaces, skeleton))]
        if type(skeleton) in (tuple, list):
            return type(skeleton)(items)
        return tuple.__new__(type(skeleton), items)  # a named tuple the codec found loaded here
    if type(skeleton) is not int or skeleton != index[path]:
        raise codec.CodecError(f"a worker sent a malformed final observation (at {path!r})")
    return parts[skeleton]


def _exact_leaf(leaf: Leaf, item: Any) -> bool:
    """``item`` comes back from its leaf array with its own type and value."""
    if leaf.kind == "text":
        return type(item) is str and len(item) <= np.dtype(leaf.dtype).itemsize // 4 and not item.endswith("\0")
    dtype = np.dtype(leaf.dtype)
    if leaf.shape == ():
        return type(item) is dtype.type
    return type(item) is np.ndarray and item.dtype == dtype and item.shape == leaf.shape
