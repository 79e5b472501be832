"""array_backend="jax", run in a process of its own by
test_arrays.py::test_the_jax_backend_in_a_process_of_its_own (JAX's threads
and the other tests' forks do not mix)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import SyncVectorEnv

import rock_vec
from test_arrays import SPACES, _address, lockstep, space_fns

jnp = pytest.importorskip("jax.numpy", reason="array_backend='jax' needs jax: pip install 'rock-vec[jax]'")
from gymnasium.wrappers.vector import ArrayConversion  # noqa: E402


@pytest.mark.parametrize("kind", ["box", "dict", "tuple"])
def test_jax_results_equal_gymnasiums_array_conversion(kind):
    obs_space, act_space = SPACES[kind]
    ours = rock_vec.AsyncVectorEnv(space_fns(obs_space, act_space), array_backend="jax", learner_envs=1,
                                   num_workers=1)
    ref = ArrayConversion(SyncVectorEnv(space_fns(obs_space, act_space)), env_xp=np, target_xp=jnp)
    lockstep(ours, ref)


def test_jax_arrays_of_copy_false_results_share_the_segment():
    envs = rock_vec.make_vec("CartPole-v1", 4, array_backend="jax", copy=False)
    try:
        obs, _ = envs.reset(seed=0)
        assert obs.unsafe_buffer_pointer() == _address(envs._io.obs.generations[0].arrays[0])
    finally:
        envs.close()



def test_actions_may_be_jax_arrays():
    ours = rock_vec.make_vec("CartPole-v1", 4)
    ref = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4)
    lockstep(ours, ref, steps=30, as_actions=jnp.asarray)


def test_jax_results_on_cartpole_with_autoreset():
    ours = rock_vec.make_vec("CartPole-v1", 4, array_backend="jax")
    ref = ArrayConversion(SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4), env_xp=np, target_xp=jnp)
    lockstep(ours, ref, steps=120)


def test_a_jax_view_kept_past_close_stays_readable():
    envs = rock_vec.make_vec("CartPole-v1", 4, array_backend="jax", copy=False)
    obs, _ = envs.reset(seed=1)
    before = np.array(obs)  # a copy
    envs.close()
    np.testing.assert_array_equal(np.asarray(obs), before)
    assert float(jnp.sum(obs)) == float(before.sum())
