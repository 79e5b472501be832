"""Exact comparison of nested results (arrays, dicts, tuples, object arrays)."""

import copy

import numpy as np


def assert_same(a, b, where):
    """``a`` and ``b`` are the same value with the same types all the way
    down, as gymnasium's ``data_equivalence`` demands: a GraphInstance is not
    a tuple, an int is not an np.int64, dict keys come in the same order,
    arrays have the same dtype and shape (object arrays compared item by
    item), NaN equals NaN; torch tensors and JAX arrays equal in dtype, shape,
    device and values."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r:.60} != {type(b).__name__} {b!r:.60}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.reshape(-1), b.reshape(-1))):
                assert_same(x, y, f"{where}.flat[{i}]")
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif hasattr(a, "__dlpack__"):  # a torch tensor or a JAX array (array_backend)
        assert (a.dtype, tuple(a.shape), str(a.device)) == (b.dtype, tuple(b.shape), str(b.device)), \
            f"{where}: {a.dtype}{tuple(a.shape)} on {a.device} != {b.dtype}{tuple(b.shape)} on {b.device}"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)
    elif isinstance(a, (float, np.floating)) and a != a:
        assert b != b, f"{where}: NaN != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_lockstep(ours, ref, steps: int, seed) -> None:
    """Resets both vector envs with ``seed``, then steps them with the same
    sampled actions, asserting identical results every time. With autoreset
    DISABLED, envs that ended are reset (reset_mask) before the next step.
    Closes both."""
    from gymnasium.vector import AutoresetMode

    try:
        assert_same(ours.reset(seed=seed), ref.reset(seed=seed), "reset")
        ref.action_space.seed(seed if isinstance(seed, int) else 0)
        ended = np.zeros(ref.num_envs, bool)
        for t in range(steps):
            actions = ref.action_space.sample()
            if ref.metadata["autoreset_mode"] == AutoresetMode.DISABLED and ended.any():
                mask = ended.copy()
                assert_same(ours.reset(options={"reset_mask": mask}), ref.reset(options={"reset_mask": mask}),
                            f"masked reset before step {t}")
            got, want = ours.step(actions), ref.step(actions)
            assert_same(got, want, f"step {t}")
            ended = np.logical_or(want[2], want[3])
    finally:
        ours.close()
        ref.close()


def info_row(batched: dict, k: int, order: dict | None = None) -> dict:
    """Row ``k`` of batched infos (``_add_info``'s layout, ``env_id`` left out)
    as that env's own infos batched alone: arrays of one row, masks included.
    A batch orders its keys as its rows first brought them, which one row cut
    out of it cannot keep: with ``order`` (that env's infos batched alone)
    the row's keys come in its order, nested dicts too, when they are the same keys."""
    out = {}
    for key, value in batched.items():
        if key.startswith("_") or key == "env_id" or not batched[f"_{key}"][k]:
            continue
        inner = order.get(key) if isinstance(order, dict) else None
        out[key] = info_row(value, k, inner) if isinstance(value, dict) else value[k:k + 1]
        out[f"_{key}"] = batched[f"_{key}"][k:k + 1]
    if isinstance(order, dict) and set(order) == set(out):
        out = {key: out[key] for key in order}
    return out


class Kept:
    """Results a test keeps, as a user would, each beside a deep copy of what
    it held when it was returned: ``copy=True`` promises they never change."""

    def __init__(self):
        self.pairs: list[tuple] = []

    @staticmethod
    def snapshot(value) -> tuple:
        return value, copy.deepcopy(value)

    def add(self, pair: tuple) -> None:
        self.pairs.append(pair)

    def forget(self, k: int) -> None:
        if self.pairs:
            del self.pairs[k % len(self.pairs)]

    def check(self, where: str) -> None:
        for got, then in self.pairs:
            assert_same(got, then, where)
