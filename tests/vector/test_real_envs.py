"""Real envs a user would try (ALE Atari, MiniGrid, MuJoCo), against SyncVectorEnv.

MuJoCo's infos carry several floats every step; MiniGrid's observation has a
`mission` leaf of a custom space (no fixed layout: it travels through the
codec); ALE is registered only in the learner, so workers must build it from
the EnvSpec the learner sends.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rock_vec
from same import assert_lockstep


def ale():
    ale_py = pytest.importorskip("ale_py", reason="ale-py is not installed (pip install -e '.[test]')")
    gym.register_envs(ale_py)


def minigrid():
    pytest.importorskip("minigrid", reason="minigrid is not installed (pip install -e '.[test]')")


def mujoco():
    pytest.importorskip("mujoco", reason="mujoco is not installed (pip install -e '.[test]')")


CASES = [
    ("HalfCheetah-v5", mujoco, 60),
    ("MiniGrid-DoorKey-5x5-v0", minigrid, 80),
    ("ALE/Pong-v5", ale, 20),
]


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("env_id,needs,steps", CASES, ids=[c[0] for c in CASES])
def test_real_envs_match_sync_step_by_step(env_id, needs, steps, mode):
    needs()
    ours = rock_vec.make_vec(env_id, num_envs=3, num_workers=2, autoreset_mode=mode)
    ref = SyncVectorEnv([lambda: gym.make(env_id)] * 3, autoreset_mode=mode)
    assert_lockstep(ours, ref, steps, seed=1)


def test_mujoco_infos_arrive_batched_every_step():
    mujoco()
    envs = rock_vec.make_vec("HalfCheetah-v5", num_envs=2)
    try:
        envs.reset(seed=0)
        _, _, _, _, info = envs.step(np.zeros((2, 6), np.float32))
        assert info["x_velocity"].dtype == np.float64 and info["_x_velocity"].all()
    finally:
        envs.close()
