"""Exact comparison of nested results (arrays, dicts, tuples, object arrays)."""

import numpy as np
from gymnasium import spaces


def assert_same(a, b, where):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {a.keys()} != {b.keys()}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where}: {type(b)}"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a, b)):
                assert_same(x, y, f"{where}[{i}]")
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, spaces.GraphInstance):
        for field in ("nodes", "edges", "edge_links"):
            assert_same(getattr(a, field), getattr(b, field), f"{where}.{field}")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} ({type(a)}) != {b!r} ({type(b)})"


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
