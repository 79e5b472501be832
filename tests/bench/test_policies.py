"""``rock_vec.bench.policies``: the torch policies of the training-loop benchmarks."""

from __future__ import annotations

import numpy as np
import pytest


def test_policies_act_on_a_batch_and_time_their_forward():
    pytest.importorskip("torch")
    from rock_vec.bench import policies

    mlp = policies.make("mlp", (4,), 2, seed=1)
    actions = mlp(np.zeros((8, 4), np.float32))
    assert actions.shape == (8,) and actions.dtype == np.int64 and set(actions.tolist()) <= {0, 1}
    cnn = policies.make("cnn", (84, 84, 4), 6)
    actions = cnn(np.zeros((3, 84, 84, 4), np.uint8))
    assert actions.shape == (3,) and 0 <= actions.min() and actions.max() < 6
    assert cnn.forward_ms > 0 and policies.make("cnn", (4, 84, 84), 4)(np.zeros((2, 4, 84, 84), np.uint8)).shape == (2,)
    with pytest.raises(ValueError, match="unknown policy 'rnn'"):
        policies.make("rnn", (4,), 2)
