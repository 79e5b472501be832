"""copy=True's batches lent out of the segment (rock_vec.engine.handouts),
on real pools: a loop that drops each batch never copies, a batch that is
held is never written, a user who keeps every batch gets copies, and what
is lent stays readable after close."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import rock_vec
from rock_vec.engine.handouts import GENERATIONS
from rock_vec.synthetic import SYNTHETIC_MAKE_ID, SyntheticEnv
from same import assert_same

NUM_ENVS = 4
ACTIONS = np.zeros(NUM_ENVS, np.int64)


def images(**kwargs):
    """4 envs of (84, 84, 4) uint8 frames that change every step."""
    return rock_vec.make_vec(SYNTHETIC_MAKE_ID, NUM_ENVS, obs_shape=(84, 84, 4), obs_dtype="uint8", **kwargs)


def generation_of(envs, array: np.ndarray) -> int | None:
    """The generation of the segment's observations that holds ``array``'s memory (None: none)."""
    address = array.__array_interface__["data"][0]
    for g, io in enumerate(envs._io.obs.generations):
        start = io.arrays[0].__array_interface__["data"][0]
        if start <= address < start + io.arrays[0].nbytes:
            return g
    return None


@pytest.fixture
def envs():
    envs = images()
    yield envs
    envs.close()


def test_a_loop_that_holds_only_its_last_batch_alternates_between_two_generations_and_never_copies(envs):
    obs, _ = envs.reset(seed=0)
    used = {generation_of(envs, obs)}
    for _ in range(50):
        before = obs.copy()
        nxt = envs.step(ACTIONS)[0]
        np.testing.assert_array_equal(obs, before)  # the step wrote another generation
        obs = nxt
        used.add(generation_of(envs, obs))
    assert used == {0, 1}
    assert envs._io.obs.copied == 0 and envs._io.obs.borrowed == 51


def test_a_loop_that_drops_each_batch_writes_one_generation(envs):
    envs.reset(seed=0)
    used = {generation_of(envs, envs.step(ACTIONS)[0]) for _ in range(20)}
    assert used == {0} and envs._io.obs.copied == 0


def test_every_kept_batch_stays_as_it_was_and_copies_begin_when_one_generation_is_left(envs):
    kept = [envs.reset(seed=0)[0]]
    for _ in range(12):
        kept.append(envs.step(ACTIONS)[0])
    snapshots = [k.copy() for k in kept]
    for _ in range(5):
        envs.step(ACTIONS)
    for k, snap in zip(kept, snapshots):
        np.testing.assert_array_equal(k, snap)
    lent = [k for k in kept if generation_of(envs, k) is not None]
    assert len(lent) == GENERATIONS - 1  # the last one is never lent: the next command needs it
    assert envs._io.obs.copied == 13 + 5 - (GENERATIONS - 1)
    del kept, lent, snapshots, k
    gc.collect()
    obs = envs.step(ACTIONS)[0]
    assert generation_of(envs, obs) is not None  # all given back: lent again


def test_a_view_or_a_tensor_of_a_batch_holds_its_generation(envs):
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")
    obs, _ = envs.reset(seed=0)
    corner = obs[1:, :10, :10]  # a view: numpy's base is the lent array
    tensor = torch.from_numpy(obs[0])
    snap_corner, snap_tensor = corner.copy(), tensor.clone()
    held = generation_of(envs, obs)
    del obs
    for _ in range(10):
        assert generation_of(envs, envs.step(ACTIONS)[0]) != held
    np.testing.assert_array_equal(corner, snap_corner)
    assert torch.equal(tensor, snap_tensor)


def test_a_lent_batch_stays_readable_after_close():
    envs = images()
    obs, _ = envs.reset(seed=0)
    snap = obs.copy()
    envs.close()
    np.testing.assert_array_equal(obs, snap)


def test_a_masked_reset_after_the_user_changed_a_lent_batch_gives_the_envs_own_observations():
    """As SyncVectorEnv: the envs not reset keep the observations they returned, whatever the user did
    to the batch."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    make = lambda: SyntheticEnv(obs_shape=(3,))  # noqa: E731
    ours = rock_vec.AsyncVectorEnv([make] * NUM_ENVS, autoreset_mode=AutoresetMode.DISABLED)
    model = SyncVectorEnv([make] * NUM_ENVS, autoreset_mode=AutoresetMode.DISABLED)
    try:
        assert_same(ours.reset(seed=3), model.reset(seed=3), "reset")
        got, want = ours.step(ACTIONS), model.step(ACTIONS)
        assert_same(got, want, "step")
        got[0][:] = -1.0  # normalised in place, say
        mask = np.array([True, False, True, False])
        assert_same(ours.reset(seed=[5, None, 6, None], options={"reset_mask": mask}),
                    model.reset(seed=[5, None, 6, None], options={"reset_mask": mask}), "masked reset")
    finally:
        ours.close()
        model.close()
