"""The learner's own share of the envs (rock_vec.engine.split): chosen by default,
visible, off with learner_envs=0, and indistinguishable from envs in
workers in everything but the process they run in."""

import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rock_vec
from rock_vec.engine import split
from same import assert_lockstep, assert_same
from sample_envs import SPACES, FailingEnv, SpaceEnv


class WhereEnv(SpaceEnv):
    def pid(self):
        return os.getpid()


def test_the_default_split_gives_the_learner_a_share_and_says_so():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=16)
    try:
        cpus = len(os.sched_getaffinity(0))
        assert envs.split == split.choose(16, cpus)
        assert envs.num_workers == max(1, cpus - 1)
        assert envs.split.learner_envs == (16 // (envs.num_workers + 1) if cpus > 1 else 16 - envs.num_workers)
        assert f"learner {envs.split.learner_envs} + " in str(envs.split)
    finally:
        envs.close()


@pytest.mark.parametrize("options,local", [({}, None), ({"learner_envs": 0}, 0), ({"learner_envs": 3}, 3),
                                           ({"num_workers": 2}, 0), ({"envs_per_worker": 2}, 0)])
def test_envs_step_in_the_learner_exactly_where_the_split_says(options, local):
    envs = rock_vec.AsyncVectorEnv([lambda: WhereEnv()] * 5, **options)
    try:
        local = envs.split.learner_envs if local is None else local
        assert envs.split.learner_envs == local
        pids = envs.call("pid")
        assert pids[:local] == (os.getpid(),) * local
        assert os.getpid() not in pids[local:] and set(pids[local:]) <= set(envs.worker_pids)
    finally:
        envs.close()


@pytest.mark.parametrize("mode", list(AutoresetMode))
@pytest.mark.parametrize("obs", ["box_f32", "dict", "nested", "graph_codec"])
def test_a_pool_with_a_learner_share_matches_sync_step_by_step(mode, obs):
    fn = lambda: SpaceEnv(observation_space=SPACES[obs], max_len=4)  # noqa: E731
    ours = rock_vec.AsyncVectorEnv([fn] * 5, autoreset_mode=mode, learner_envs=2)
    assert_lockstep(ours, SyncVectorEnv([fn] * 5, autoreset_mode=mode), 30, seed=4)


def test_calls_and_masked_resets_reach_both_sides():
    ours = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 4, learner_envs=2)
    ref = SyncVectorEnv([lambda: SpaceEnv()] * 4)
    try:
        for envs in (ours, ref):
            envs.reset(seed=1)
            envs.set_attr("max_len", [1, 2, 3, 4])
        assert ours.get_attr("max_len") == (1, 2, 3, 4)
        assert_same(ours.call("echo", 5, k=[1]), ref.call("echo", 5, k=[1]), "echo")
        for mask in ([True, False, False, False], [False, False, True, True], [False, True, True, False]):
            mask = np.array(mask)
            assert_same(ours.reset(options={"reset_mask": mask}), ref.reset(options={"reset_mask": mask}), str(mask))
    finally:
        ours.close()
        ref.close()


def test_an_exception_in_the_learners_share_is_its_own_and_the_pool_stays_usable():
    fns = [lambda i=i: FailingEnv(index=i, fail_index=0, fail_step=2, how="raise") for i in range(4)]
    envs = rock_vec.AsyncVectorEnv(fns, learner_envs=2)
    try:
        envs.reset(seed=0)
        envs.step(np.zeros(4, np.int64))
        with pytest.raises(KeyError, match="boom in env 0") as info:
            envs.step(np.zeros(4, np.int64))
        assert any("in env 0 during `step_wait`, in the learner's own process" in n for n in info.value.__notes__)
        # The learner's share stopped at the env that raised, as SyncVectorEnv's loop does (and as a
        # worker's loop does with its own envs); the worker's envs finished that step.
        obs, *_ = envs.step(np.zeros(4, np.int64))
        assert obs[:, 0].tolist() == [3.0, 2.0, 3.0, 3.0]
    finally:
        envs.close()


def test_a_value_that_cannot_travel_fails_alike_in_the_learners_share():
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 4, learner_envs=2)
    try:
        with pytest.raises(rock_vec.segment.codec.CodecError, match=r"call\('echo'\) per env\[0\]\['args'\]\[0\] of type"):
            envs.call("echo", lambda: None)
        envs.reset(seed=0)
    finally:
        envs.close()


def test_the_timeout_counts_the_learners_own_steps():
    import multiprocessing

    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv(step_seconds=0.2)] * 2 + [lambda: FailingEnv(step_seconds=0.6)],
                                   learner_envs=2)
    try:
        envs.reset()
        envs.step_async(np.zeros(3, np.int64))
        with pytest.raises(multiprocessing.TimeoutError):  # 0.4 s in the learner, the worker needs 0.6 s
            envs.step_wait(timeout=0.45)
        obs, *_ = envs.step_wait(timeout=5)
        assert obs[:, 0].tolist() == [1.0, 1.0, 1.0]
        envs.step_async(np.zeros(3, np.int64))
        with pytest.raises(multiprocessing.TimeoutError):  # the learner's own 0.4 s already exceed it
            envs.step_wait(timeout=0.1)
        obs, *_ = envs.step_wait(timeout=5)
        assert obs[:, 0].tolist() == [2.0, 2.0, 2.0]
    finally:
        envs.close()


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_send_and_recv_step_the_learners_share_at_recv(mode):
    """Per env, the async API gives the trajectory of the sync step."""
    fn = lambda: SpaceEnv(max_len=5)  # noqa: E731
    ours = rock_vec.AsyncVectorEnv([fn] * 4, learner_envs=2, autoreset_mode=mode)
    ref = SyncVectorEnv([fn] * 4, autoreset_mode=mode)
    try:
        ours.async_reset(seed=7)
        want_obs, _ = ref.reset(seed=7)
        got = {}
        obs, *_, info = ours.recv(timeout=5)
        for row, i in enumerate(info["env_id"]):
            got[int(i)] = obs[row]
        for i in range(4):
            np.testing.assert_array_equal(got[i], want_obs[i])
        rng = np.random.default_rng(0)
        for t in range(12):
            actions = rng.integers(0, 3, 4)
            want = ref.step(actions)
            ours.send(actions[[2, 0]], [2, 0])  # one of each side first
            ours.send(actions[[3, 1]], [3, 1])
            obs, rew, term, trunc, info = ours.recv(timeout=5)
            order = np.argsort(info["env_id"])
            np.testing.assert_array_equal(obs[order], want[0], err_msg=f"step {t}")
            np.testing.assert_array_equal(rew[order], want[1])
            np.testing.assert_array_equal(term[order], want[2])
            np.testing.assert_array_equal(trunc[order], want[3])
    finally:
        ours.close()
        ref.close()


def test_async_batches_smaller_than_the_pool_keep_every_env_in_workers():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=8, batch_size=4)
    try:
        assert envs.split.learner_envs == 0 and "keep the learner free" in str(envs.split)
    finally:
        envs.close()


def test_the_learners_share_is_closed_with_the_pool(tmp_path):
    marker = tmp_path / "closed"

    class Recorder(gym.Wrapper):
        def close(self):
            with open(marker, "a") as f:
                f.write(f"{os.getpid()}\n")
            super().close()

    envs = rock_vec.AsyncVectorEnv([lambda: Recorder(gym.make("CartPole-v1"))] * 4, learner_envs=2)
    envs.reset(seed=0)
    envs.close()
    pids = [int(p) for p in marker.read_text().split()]
    # in the learner: its 2 envs and the env built to read the spaces (as gymnasium builds one)
    assert len(pids) == 5 and pids.count(os.getpid()) == 3


def test_sb3_face_with_a_learner_share_matches_dummy_vec_env():
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 is not installed (pip install -e '.[test]')")
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rock_vec.sb3 import RockVecEnv

    fns = [lambda: SpaceEnv(observation_space=spaces.Box(-1, 1, (3,), np.float32), max_len=4)] * 4
    ours, ref = RockVecEnv(fns, learner_envs=2), DummyVecEnv(fns)
    try:
        for venv in (ours, ref):
            venv.seed(3)
        assert_same(ours.reset(), ref.reset(), "reset")
        for t in range(20):
            actions = np.array([t % 3, 1, 2, 0])
            got, want = ours.step(actions), ref.step(actions)
            assert_same(list(got[:3]), list(want[:3]), f"step {t}")
            assert_same(got[3], want[3], f"step {t} infos")
    finally:
        ours.close()
        ref.close()
