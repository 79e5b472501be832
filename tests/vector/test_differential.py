"""rock_vec against gymnasium's SyncVectorEnv as the oracle, step by step.

Same seeds and actions must give identical observations, rewards, flags and
infos for every space kind and every autoreset mode.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rock_vec
from sample_envs import SPACES, SpaceEnv
from same import assert_lockstep

ACTIONS = {
    "discrete": spaces.Discrete(3),
    "box": spaces.Box(-1, 1, (2,), np.float32),
    "multi_discrete": spaces.MultiDiscrete([2, 5]),
    "dict": spaces.Dict({"move": spaces.Discrete(4), "force": spaces.Box(0, 1, (1,), np.float64)}),
}


def run_both(env_fn, num_envs, autoreset_mode, steps, seed, ref_fn=None, **options):
    ref = SyncVectorEnv([ref_fn or env_fn] * num_envs, autoreset_mode=autoreset_mode)
    ours = rock_vec.AsyncVectorEnv([env_fn] * num_envs, autoreset_mode=autoreset_mode, **options)
    assert ours.single_observation_space == ref.single_observation_space
    assert ours.observation_space == ref.observation_space
    assert ours.action_space == ref.action_space
    assert ours.metadata == ref.metadata
    assert_lockstep(ours, ref, steps, seed)


@pytest.mark.parametrize("name", list(SPACES))
def test_every_observation_space_matches_sync(name):
    space = SPACES[name]
    run_both(lambda: SpaceEnv(observation_space=space), 4, AutoresetMode.NEXT_STEP, 25, seed=3, num_workers=2)


@pytest.mark.parametrize("name", list(ACTIONS))
def test_every_action_space_matches_sync(name):
    space = ACTIONS[name]
    run_both(lambda: SpaceEnv(action_space=space), 3, AutoresetMode.NEXT_STEP, 25, seed=5, num_workers=2)


@pytest.mark.parametrize("mode", list(AutoresetMode))
@pytest.mark.parametrize("obs", ["box_f32", "dict", "nested"])
def test_every_autoreset_mode_matches_sync(mode, obs):
    space = SPACES[obs]
    run_both(lambda: SpaceEnv(observation_space=space, max_len=4), 5, mode, 40, seed=11, num_workers=2)


def test_same_step_final_obs_survives_an_env_that_reuses_its_buffer():
    # The oracle's env returns fresh arrays: SyncVectorEnv itself keeps a
    # reference to final_obs, which such an env overwrites on reset (Gymnasium#1715).
    run_both(lambda: SpaceEnv(max_len=3, reuse_obs=True), 4, AutoresetMode.SAME_STEP, 30, seed=1,
             ref_fn=lambda: SpaceEnv(max_len=3), num_workers=2)


@pytest.mark.parametrize("layout", [dict(num_workers=1), dict(envs_per_worker=1), dict(envs_per_worker=3),
                                    dict(envs_per_worker=4, context="spawn")])
def test_cartpole_matches_sync_in_every_layout(layout):
    run_both(lambda: gym.make("CartPole-v1"), 7, AutoresetMode.NEXT_STEP, 300, seed=0, **layout)


def test_make_vec_matches_gymnasium_sync():
    ours = rock_vec.make_vec("CartPole-v1", num_envs=6, envs_per_worker=4)
    ref = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 6)
    assert_lockstep(ours, ref, 200, seed=[1, 2, 3, 4, 5, 6])


def test_make_vec_of_an_id_registered_only_here_with_kwargs_json_cannot_carry():
    # The workers fork from a server that never saw this registration, and a
    # space in the kwargs keeps the spec out of JSON: the pickled constructors carry the EnvSpec.
    gym.register("RockVecHereOnly-v0", entry_point="sample_envs:SpaceEnv", max_episode_steps=5,
                 kwargs={"observation_space": SPACES["dict"]})
    try:
        ours = rock_vec.make_vec("RockVecHereOnly-v0", num_envs=4, learner_envs=0, max_len=9)
        ref = SyncVectorEnv([lambda: gym.make("RockVecHereOnly-v0", max_len=9)] * 4)
        assert_lockstep(ours, ref, 30, seed=4)
    finally:
        gym.registry.pop("RockVecHereOnly-v0")


def test_copy_false_returns_views_valid_until_the_next_call():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=2, copy=False)
    try:
        obs, _ = envs.reset(seed=0)
        first = obs.copy()
        obs2, *_ = envs.step(np.array([0, 1]))
        assert obs2 is obs or np.shares_memory(obs2, obs)
        assert not np.array_equal(first, obs2)
    finally:
        envs.close()


def test_seed_streams_are_distinct_and_reproducible():
    def run():
        envs = rock_vec.make_vec("CartPole-v1", num_envs=4, num_workers=2)
        try:
            return envs.reset(seed=123)[0], envs.np_random_seed
        finally:
            envs.close()

    (obs_a, seeds_a), (obs_b, seeds_b) = run(), run()
    np.testing.assert_array_equal(obs_a, obs_b)
    assert seeds_a == seeds_b == (123, 124, 125, 126)
    assert len({row.tobytes() for row in obs_a}) == 4
