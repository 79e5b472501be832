"""What a script written for gymnasium's vector envs relies on, down to types:
each env gets its action as the batch gave it and judges it itself, SAME_STEP
final observations are what the env returned, Graph values stay
GraphInstances, and gymnasium's errors and warnings keep their types and
words. Every comparison with SyncVectorEnv is type-exact (tests/same.py)."""

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rock_vec
from same import assert_lockstep, assert_same
from sample_envs import SPACES, PlainObsEnv, RecorderEnv, SpaceEnv

# ---- actions reach each env as given ----

BATCHES = {
    "float64 batch, float32 Box": (spaces.Box(-1, 1, (2,), np.float32), np.array([[0.1, 0.2], [0.3, 0.4]])),
    "float32 batch, float32 Box": (spaces.Box(-1, 1, (2,), np.float32), np.ones((2, 2), np.float32)),
    "Python floats, scalar Box": (spaces.Box(0, 1, (), np.float32), [0.1, 0.3]),
    "Python ints, Discrete": (spaces.Discrete(4), [1, 3]),
    "int32 batch, Discrete": (spaces.Discrete(4), np.array([1, 2], np.int32)),
    "uint8 batch, Discrete": (spaces.Discrete(4), np.array([0, 3], np.uint8)),
    "Python bools, Discrete": (spaces.Discrete(2), [True, False]),
    "float batch, Discrete": (spaces.Discrete(4), np.array([1.0, 2.5])),
    "int64 300, int8 Box": (spaces.Box(-5, 5, (), np.int8), np.array([300, -2])),
    "bool batch, MultiBinary": (spaces.MultiBinary(3), np.array([[True, False, True], [False, False, True]])),
    "float16 batch, float64 Box": (spaces.Box(-1, 1, (1,), np.float64), np.ones((2, 1), np.float16)),
    "Dict of mixed batches": (
        spaces.Dict({"move": spaces.Discrete(3), "force": spaces.Box(0, 1, (1,), np.float32)}),
        {"move": [2, 0], "force": np.array([[0.5], [0.25]])}),
    "Text": (spaces.Text(3), ("abcdef", "")),  # longer than max_length: the env judges it
}


@pytest.mark.parametrize("name", list(BATCHES))
def test_each_env_gets_its_action_as_the_batch_gave_it_like_sync(name):
    space, actions = BATCHES[name]
    ours = rock_vec.AsyncVectorEnv([lambda: RecorderEnv(space)] * 2, num_workers=2)
    ref = SyncVectorEnv([lambda: RecorderEnv(space)] * 2)
    try:
        ours.reset(seed=0)
        ref.reset(seed=0)
        ours.step(actions)
        ref.step(actions)
        assert_same(ours.get_attr("last_action"), ref.get_attr("last_action"), name)
    finally:
        ours.close()
        ref.close()


def test_async_sends_keep_each_envs_own_dtype():
    space = spaces.Box(-1, 1, (2,), np.float32)
    envs = rock_vec.AsyncVectorEnv([lambda: RecorderEnv(space)] * 4, num_workers=2, batch_size=2)
    try:
        envs.async_reset(seed=0)
        envs.recv(timeout=5), envs.recv(timeout=5)
        envs.send(np.full((2, 2), 0.1), [0, 2])  # float64 ...
        envs.send(np.full((2, 2), 0.1, np.float32), [1, 3])  # ... then float32, before any env ran
        envs.recv(timeout=5), envs.recv(timeout=5)
        got = envs.get_attr("last_action")
        assert [a.dtype for a in got] == [np.float64, np.float32, np.float64, np.float32]
        assert got[0][0] == 0.1 and got[1][0] == np.float32(0.1)
    finally:
        envs.close()


def test_the_env_judges_action_values_an_action_outside_the_space_means_what_it_says():
    envs = rock_vec.AsyncVectorEnv([lambda: RecorderEnv()] * 3, num_workers=2)
    try:
        envs.reset(seed=0)
        _, _, terminated, _, _ = envs.step(np.array([4, 0, 4]))  # 4: "end the episode" in RecorderEnv
        assert terminated.tolist() == [True, False, True]
    finally:
        envs.close()


def test_an_env_that_rejects_an_action_raises_its_own_error_and_the_pool_stays_usable():
    envs = rock_vec.AsyncVectorEnv([lambda: RecorderEnv(reject=True)] * 3, num_workers=2)
    try:
        envs.reset(seed=0)
        with pytest.raises(ValueError, match=r"RecorderEnv cannot take the action np.int64\(7\)") as info:
            envs.step(np.array([0, 7, 1]))
        assert "sample_envs.py" in info.value.__cause__.text
        _, _, terminated, _, _ = envs.step(np.array([0, 1, 2]))
        assert not terminated.any()
    finally:
        envs.close()


class Picky(spaces.Space):
    """A custom space whose contains() refuses everything: the env decides."""

    def __init__(self):
        super().__init__((), None)

    def sample(self, mask=None, probability=None):
        return "go"

    def contains(self, x):
        raise AssertionError("a pool must not judge actions with the space's contains()")

    def __eq__(self, other):
        return isinstance(other, Picky)


def test_a_custom_action_space_is_never_asked_whether_it_contains_an_action():
    envs = rock_vec.AsyncVectorEnv([lambda: RecorderEnv(Picky())] * 2)
    try:
        envs.reset(seed=0)
        envs.step(("left", {"speed": 3}))
        assert envs.get_attr("last_action") == ("left", {"speed": 3})
    finally:
        envs.close()


@pytest.mark.parametrize("actions,error,match", [
    (np.zeros(3, np.int64), ValueError, r"holds 3 actions for 4 envs"),  # Gymnasium#1417: refused, not a hang
    (np.zeros(5, np.int64), ValueError, r"holds 5 actions for 4 envs"),
    ([0, 1, 2], ValueError, r"holds 3 actions for 4 envs"),
    (0, TypeError, r"Unable to iterate over the following elements: 0"),
    (np.int64(2), TypeError, "Unable to iterate"),
    (np.zeros((4, 1), np.int64), ValueError, r"actions of shape \(1,\), expected \(\)"),
    (np.array([0, None, 1, 0], dtype=object), TypeError, "dtype object, which cannot travel"),
    (np.array(["a", "b", "c", "d"]), TypeError, "cannot travel"),
    ([[0], [1, 2], [0], [1]], ValueError, "not a batch"),
])
def test_what_the_transport_cannot_carry_is_refused_before_dispatch_and_the_pool_stays_usable(actions, error, match):
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 4, num_workers=2)
    try:
        envs.reset(seed=0)
        with pytest.raises(error, match=match):
            envs.step(actions)
        obs, *_ = envs.step(np.zeros(4, np.int64))
        assert obs.shape == (4, 3)
    finally:
        envs.close()


def test_a_structured_batch_missing_a_part_raises_as_gymnasium_does_naming_it():
    space = spaces.Dict({"move": spaces.MultiDiscrete([2, 3]), "force": spaces.Tuple((spaces.Discrete(2),) * 2)})
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv(action_space=space)] * 2)
    try:
        envs.reset(seed=0)
        good = {"move": np.zeros((2, 2), np.int64), "force": (np.zeros(2, np.int64), np.ones(2, np.int64))}
        with pytest.raises(KeyError, match="has no key 'force'"):
            envs.step({"move": good["move"]})
        with pytest.raises(IndexError, match=r"action\['force'\] has 1 batches for the 2 items"):
            envs.step({**good, "force": (np.zeros(2, np.int64),)})
        with pytest.raises(ValueError, match=r"action\['move'\] holds 3 actions for 2 envs"):
            envs.step({**good, "move": np.zeros((3, 2), np.int64)})
        with pytest.raises(TypeError, match="must be a dict of batches"):
            envs.step([good, good])
        envs.step({**good, "extra": 1})  # keys the space lacks are ignored, as gymnasium's iterate does
    finally:
        envs.close()


def test_float64_actions_drive_mujoco_exactly_as_sync_does():
    pytest.importorskip("mujoco", reason="mujoco is not installed (pip install -e '.[test]')")
    ours = rock_vec.make_vec("HalfCheetah-v5", num_envs=2, num_workers=2)
    ref = SyncVectorEnv([lambda: gym.make("HalfCheetah-v5")] * 2)
    try:
        assert_same(ours.reset(seed=3), ref.reset(seed=3), "reset")
        rng = np.random.default_rng(0)
        for t in range(30):
            actions = rng.uniform(-1, 1, (2, 6))  # float64 for a float32 Box: no rounding on the way
            assert_same(ours.step(actions), ref.step(actions), f"step {t}")
    finally:
        ours.close()
        ref.close()


# ---- observations come back as the env made them ----


@pytest.mark.parametrize("kind", ["int", "odict", "float64", "namedtuple"])
def test_same_step_final_obs_is_what_the_env_returned_like_sync(kind):
    ours = rock_vec.AsyncVectorEnv([lambda: PlainObsEnv(kind)] * 3, num_workers=2,
                                   autoreset_mode=AutoresetMode.SAME_STEP)
    ref = SyncVectorEnv([lambda: PlainObsEnv(kind)] * 3, autoreset_mode=AutoresetMode.SAME_STEP)
    assert_lockstep(ours, ref, 10, seed=0)


def test_async_same_step_final_obs_is_what_the_env_returned():
    envs = rock_vec.AsyncVectorEnv([lambda: PlainObsEnv("odict")] * 2, batch_size=2,
                                   autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        envs.async_reset(seed=0)
        envs.recv(timeout=5)
        for _ in range(3):
            envs.send(np.zeros(2, np.int64), [0, 1])
            *_, info = envs.recv(timeout=5)
        final = info["final_obs"][0]
        assert type(final) is type(PlainObsEnv("odict")._obs()) and list(final) == ["b", "a"]
        assert type(final["b"]) is int
    finally:
        envs.close()


GRAPHS = {
    "graph": spaces.Graph(node_space=spaces.Box(-1, 1, (2,)), edge_space=spaces.Discrete(3)),
    "sequence of graphs": spaces.Sequence(spaces.Graph(spaces.Discrete(4), None)),
    "graph in a dict": spaces.Dict({"g": spaces.Graph(spaces.Box(0, 1, (3,)), None), "x": spaces.Discrete(2)}),
}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_observations_come_back_as_graph_instances_in_the_batched_space(name):
    space = GRAPHS[name]
    fn = lambda: SpaceEnv(observation_space=space, max_len=3)  # noqa: E731
    ours = rock_vec.AsyncVectorEnv([fn] * 3, num_workers=2, autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        obs, _ = ours.reset(seed=1)
        assert obs in ours.observation_space
        obs, *_ = ours.step(ours.action_space.sample())
        assert obs in ours.observation_space
    finally:
        ours.close()
    ref = SyncVectorEnv([fn] * 3, autoreset_mode=AutoresetMode.SAME_STEP)
    ours = rock_vec.AsyncVectorEnv([fn] * 3, num_workers=2, autoreset_mode=AutoresetMode.SAME_STEP)
    assert_lockstep(ours, ref, 12, seed=2)


def test_graph_actions_reach_the_env_as_graph_instances():
    space = GRAPHS["graph"]
    envs = rock_vec.AsyncVectorEnv([lambda: RecorderEnv(space)] * 2)
    try:
        envs.reset(seed=0)
        actions = envs.action_space.sample()
        envs.step(actions)
        got = envs.get_attr("last_action")
        assert all(type(a) is spaces.GraphInstance and a in space for a in got)
        assert_same(got, tuple(actions), "actions")
    finally:
        envs.close()


# ---- gymnasium's errors and warnings ----


@pytest.mark.parametrize("terminate", [False, True])
def test_close_while_a_call_is_pending_warns_in_gymnasiums_words_then_closes(terminate):
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 2)
    envs.reset(seed=0)
    envs.step_async(np.zeros(2, np.int64))
    with pytest.warns(UserWarning, match=re.escape(
            "Calling `close` while waiting for a pending call to `step` to complete.")):
        envs.close(terminate=terminate)
    assert envs.closed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envs.close()  # already closed: nothing more to say


def test_observation_mode_same_with_different_spaces_raises_in_gymnasiums_words():
    fns = [lambda h=h: SpaceEnv(observation_space=spaces.Box(0, h, (2,))) for h in (1, 2, 3)]
    with pytest.raises(RuntimeError, match="the sub-environments observation spaces are not equivalent. .*If this is "
                                           "intentional, use `observation_mode='different'` instead."):
        rock_vec.AsyncVectorEnv(fns, observation_mode="same")


def test_every_space_kind_round_trips_observations_in_the_batched_space():
    for name, space in SPACES.items():
        envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv(observation_space=space)] * 2)
        try:
            obs, _ = envs.reset(seed=0)
            assert obs in envs.observation_space, name
            obs, *_ = envs.step(envs.action_space.sample())
            assert obs in envs.observation_space, name
        finally:
            envs.close()
