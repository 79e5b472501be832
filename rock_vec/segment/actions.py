"""How a batch of actions travels from the learner to each env.

Gymnasium hands each env its part of the batch as it is: a float64 batch for
a float32 ``Box`` reaches the env as float64, a list of Python ints as Python
ints, and only the env judges the values (action 4 of a ``Discrete(4)`` may
mean something to it). rock_vec does the same through the segment:

- the learner checks only what the transport needs: the structure (``Dict``
  keys, ``Tuple`` items), one action per env, each action's shape, and a
  dtype its slot can hold; never the values, and never a space's
  ``contains``;
- an array leaf's slot has room for any of the ``DTYPES`` up to 8 bytes an
  item (more if the space's own dtype is wider), and a code per env and
  leaf says which dtype that env's action has, so the worker reads it back
  exactly as given: no cast, no loss (Python bools, ints and floats of a
  list batch come back as Python scalars);
- leaves with no fixed layout (``Text``, ``Graph``, ``Sequence``, custom
  spaces) travel per env through the codec, which keeps their types.

Learner and worker use the same ``Actions`` over the pool's arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from . import codec
from .layout import Arena, Leaf, assemble, leaf_values, leaves_of

#: The dtypes an action may have, by code. Codes past them mark a list of
#: Python scalars, stored in the dtype given in PYTHON_SCALARS.
DTYPES = tuple(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, np.clongdouble))
PYTHON_SCALARS = ((bool, np.dtype(np.bool_)), (int, np.dtype(np.int64)), (float, np.dtype(np.float64)))
_CODE = {dtype: code for code, dtype in enumerate(DTYPES)}
_PY_CODE = {kind: len(DTYPES) + k for k, (kind, _) in enumerate(PYTHON_SCALARS)}
_STORED = DTYPES + tuple(dtype for _, dtype in PYTHON_SCALARS)
_PY_TYPE = (None,) * len(DTYPES) + tuple(kind for kind, _ in PYTHON_SCALARS)
SLOT_ITEM_BYTES = 8  # room per item: every dtype of 8 bytes or less travels


def action_leaves(space: spaces.Space, codec_bytes: int) -> list[Leaf]:
    """The leaves of an action space: arrays for Box, Discrete,
    MultiDiscrete and MultiBinary; the codec for everything else (Text
    included: a fixed-width string slot would cut a long string)."""
    return [Leaf(leaf.path, "codec", "|u1", (codec_bytes,)) if leaf.kind == "text" else leaf
            for leaf in leaves_of(space, codec_bytes)]


def _item_bytes(leaf: Leaf) -> int:
    return max(SLOT_ITEM_BYTES, np.dtype(leaf.dtype).itemsize)


def plan_action_arrays(arena: Arena, leaves: list[Leaf], num_envs: int) -> None:
    """Declares every leaf's slots (raw bytes, one row per env), and the
    dtype code of each env's action, a row per leaf (``act.code``)."""
    for k, leaf in enumerate(leaves):
        if leaf.kind == "codec":
            arena.add(f"act{k}", leaf.dtype, (num_envs, *leaf.shape))
            arena.add(f"act{k}.len", "<u4", (num_envs,))
        else:
            arena.add(f"act{k}", "|u1", (num_envs, int(np.prod(leaf.shape, dtype=np.int64)) * _item_bytes(leaf)))
    arena.add("act.code", "|u1", (max(1, len(leaves)), num_envs))


def _where(leaf: Leaf) -> str:
    return f"action{leaf.describe()}" if leaf.path else "the action batch"


class Actions:
    """One pool's action slots: ``check`` and ``write`` (learner),
    ``read_one`` (worker)."""

    def __init__(self, space: spaces.Space, leaves: list[Leaf], arrays: dict, num_envs: int):
        self.space, self.leaves, self.num_envs = space, leaves, num_envs
        self.slots = [arrays[f"act{k}"] for k in range(len(leaves))]
        self.lengths = [arrays.get(f"act{k}.len") for k in range(len(leaves))]
        self.codes = arrays["act.code"]
        self._code_bytes = [memoryview(row) for row in self.codes]  # reads give ints, fast
        self.structured = not (len(leaves) == 1 and leaves[0].path == ())
        # Leaf k's slots seen as (num_envs, *shape) of each stored dtype, by code, made on first use
        # (each view costs a forked worker memory).
        self._views = [None if leaf.kind == "codec" else [None] * len(_STORED) for leaf in leaves]
        self._scalar = [leaf.shape == () for leaf in leaves]
        self._uniform = [-1] * len(leaves)  # the code every env has for a leaf (learner), -1 if mixed
        self._last = (None, -1)  # (dtype, code) of the last unstructured batch: the common case is one lookup
        self._shape = {num_envs: (num_envs, *leaves[0].shape)} if leaves else {}
        if not self.structured and leaves[0].kind != "codec":
            self.read_one = self._single_reader()  # the worker's hot path: one array leaf

    def _view(self, k: int, code: int) -> np.ndarray:
        """Leaf ``k``'s slots seen as ``(num_envs, *shape)`` of the dtype ``code`` stores.

        Raises:
            ValueError: for a code with no dtype or one wider than the slot
                (check() never writes such a code).
        """
        view = self._views[k][code] if 0 <= code < len(_STORED) else None
        if view is None:
            leaf, raw = self.leaves[k], self.slots[k]
            dtype = _STORED[code] if 0 <= code < len(_STORED) else None
            if dtype is None or dtype.itemsize > _item_bytes(leaf):
                raise ValueError(f"an action has the dtype code {code}, which no batch of this pool can have")
            inner = np.empty(leaf.shape, dtype).strides
            view = np.lib.stride_tricks.as_strided(
                raw.view(dtype), (self.num_envs, *leaf.shape), (raw.strides[0], *inner))
            self._views[k][code] = view
        return view

    # ---- learner ----

    def check(self, actions: Any, n: int, per_env: bool = False) -> list:
        """Checks a batch of ``n`` actions; returns per leaf what ``write``
        takes. ``per_env``: ``actions`` is a sequence of one action per env
        (Stable-Baselines3's form) rather than gymnasium's batched structure.

        Raises:
            TypeError: a scalar where a batch is needed, a dtype that cannot
                travel, a structure of the wrong type.
            ValueError: a batch whose length is not ``n`` or whose actions
                have the wrong shape.
            KeyError, IndexError: a ``Dict`` key or ``Tuple`` item missing,
                as gymnasium raises them.
        """
        if not self.structured and not per_env:
            if type(actions) is np.ndarray and actions.dtype is self._last[0] and actions.shape == self._shape.get(n):
                return [(actions, self._last[1])]
            return [self._leaf_batch(0, actions, n)]
        if per_env:
            items = self._per_env_items(actions, n)
            parts = [list(column) for column in zip(*(leaf_values(self.space, a) for a in items))]
            if not parts:
                parts = [[] for _ in self.leaves]
        else:
            parts = []
            _batched_leaf_values(self.space, actions, (), parts)
        return [self._leaf_batch(k, part, n) for k, part in enumerate(parts)]

    def _per_env_items(self, actions: Any, n: int) -> list:
        if isinstance(actions, (str, bytes)) or not hasattr(actions, "__len__"):
            raise TypeError(f"actions must hold one action per env ({n} envs), got {type(actions).__name__}")
        if len(actions) != n:
            raise ValueError(f"the action batch holds {len(actions)} actions for {n} envs: give one per env")
        items = list(actions)
        for i, item in enumerate(items):
            if isinstance(self.space, spaces.Dict):
                if not isinstance(item, Mapping):
                    raise TypeError(f"the action of env {i} must be a dict for {self.space}, "
                                    f"got {type(item).__name__}")
                missing = [key for key in self.space.spaces if key not in item]
                if missing:
                    raise KeyError(f"the action of env {i} has no key {missing[0]!r} of {self.space}")
            elif isinstance(self.space, spaces.Tuple) and (
                    not isinstance(item, (tuple, list)) or len(item) < len(self.space.spaces)):
                raise ValueError(f"the action of env {i} must be a tuple of {len(self.space.spaces)} items "
                                 f"for {self.space}, got {item!r:.80}")
        return items

    def _leaf_batch(self, k: int, value: Any, n: int) -> tuple:
        leaf = self.leaves[k]
        where = _where(leaf)
        if isinstance(value, (str, bytes)) or (not hasattr(value, "__len__") and not hasattr(value, "__iter__")) \
                or (isinstance(value, np.ndarray) and value.ndim == 0):
            raise TypeError(f"Unable to iterate over the following elements: {value!r:.80} ({where} needs one "
                            f"action per env, {n} envs)")
        if leaf.kind == "codec":
            items = list(value)
            if len(items) != n:
                raise ValueError(f"{where} holds {len(items)} actions for {n} envs: give one per env")
            return items, -1
        code = -1
        if type(value) is not np.ndarray:
            if leaf.shape == () and isinstance(value, (list, tuple)) and value:
                kind = type(value[0])
                if kind in _PY_CODE and all(type(item) is kind for item in value):
                    code = _PY_CODE[kind]
            try:
                value = np.asarray(value, dtype=_STORED[code] if code >= 0 else None)
            except (ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"{where} is not a batch of {leaf.shape}-shaped actions: {exc}") from None
        if value.ndim == 0:
            raise TypeError(f"Unable to iterate over the following elements: {value!r:.80} ({where} needs one "
                            f"action per env, {n} envs)")
        if len(value) != n:
            raise ValueError(f"{where} holds {len(value)} actions for {n} envs: give one per env")
        if value.shape[1:] != leaf.shape:
            raise ValueError(f"{where} has actions of shape {value.shape[1:]}, expected {leaf.shape} "
                             f"(batch shape {value.shape}, expected {(n, *leaf.shape)})")
        if code < 0:
            dtype = value.dtype
            code = _CODE.get(dtype, -1)
            if code < 0 and dtype.byteorder not in "=|":  # same values in native byte order
                value = value.astype(dtype.newbyteorder("="))
                code = _CODE.get(value.dtype, -1)
            if code < 0 or value.dtype.itemsize > _item_bytes(leaf):
                raise TypeError(
                    f"{where} has dtype {dtype}, which cannot travel to the workers: actions may be bool, int, "
                    f"uint, float or complex of at most {_item_bytes(leaf)} bytes an item")
            if not self.structured:
                self._last = (value.dtype, code)
                self._shape.setdefault(n, (n, *leaf.shape))
        return value, code

    def write(self, parts: list, rows: np.ndarray | None = None) -> None:
        """Writes checked leaf batches into the envs ``rows`` (all, in
        order, when None)."""
        for k, (value, code) in enumerate(parts):
            if code < 0:  # a codec leaf
                slot, length = self.slots[k], self.lengths[k]
                what = f"{_where(self.leaves[k])} of env"
                for i, item in zip(range(self.num_envs) if rows is None else rows.tolist(), value):
                    length[i] = codec.encode_into(item, slot[i], 0, what=f"{what} {i}")
                continue
            if rows is None:
                if self._uniform[k] != code:
                    self.codes[k] = code
                    self._uniform[k] = code
                np.copyto(self._view(k, code), value)
            else:
                self.codes[k, rows] = code
                self._uniform[k] = -1
                self._view(k, code)[rows] = value

    # ---- worker ----

    def read_one(self, i: int) -> Any:
        """Env ``i``'s action, in the type and dtype it was given."""
        if not self.structured:
            return self._read_leaf(0, i)
        return assemble(self.space, [self._read_leaf(k, i) for k in range(len(self.leaves))])

    def _single_reader(self):
        codes, views, scalar, py_type, view_of = (
            self._code_bytes[0], self._views[0], self._scalar[0], _PY_TYPE, self._view)

        def read_one(i: int) -> Any:
            code = codes[i]
            view = views[code] if code < len(views) else None
            item = (view if view is not None else view_of(0, code))[i]
            if not scalar:
                return item.copy()  # the slot is overwritten by the next step; the env may keep its action
            kind = py_type[code]
            return item if kind is None else kind(item)

        return read_one

    def _read_leaf(self, k: int, i: int) -> Any:
        if self._views[k] is None:  # a codec leaf
            return codec.decode(self.slots[k][i, : self.lengths[k][i]])
        code = self._code_bytes[k][i]
        item = self._view(k, code)[i]
        if not self._scalar[k]:
            return item.copy()  # the slot is overwritten by the next step; the env may keep its action
        kind = _PY_TYPE[code]
        return item if kind is None else kind(item)


def _batched_leaf_values(space: spaces.Space, value: Any, path: tuple, out: list) -> None:
    """Gymnasium's batched structure (a dict of batches, a tuple of batches)
    split into leaf batches; missing keys and items raise as gymnasium's
    ``iterate`` does (KeyError, IndexError), extra ones are ignored."""
    where = f"action{''.join(f'[{p!r}]' for p in path)}" if path else "the action batch"
    if isinstance(space, spaces.Dict):
        if not isinstance(value, Mapping):
            raise TypeError(f"{where} must be a dict of batches for {space}, got {type(value).__name__}")
        for key, sub in space.spaces.items():
            if key not in value:
                raise KeyError(f"{where} has no key {key!r} (the action space is {space})")
            _batched_leaf_values(sub, value[key], path + (key,), out)
    elif isinstance(space, spaces.Tuple):
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"{where} must be a tuple of batches for {space}, got {type(value).__name__}")
        if len(value) < len(space.spaces):
            raise IndexError(f"{where} has {len(value)} batches for the {len(space.spaces)} items of {space}")
        for i, sub in enumerate(space.spaces):
            _batched_leaf_values(sub, value[i], path + (i,), out)
    else:
        out.append(value)
