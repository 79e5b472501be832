"""rock_vec.sb3.RockVecEnv against SB3's DummyVecEnv, and PPO through it."""

import os

import gymnasium as gym
import numpy as np
import psutil
import pytest

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is not installed (pip install -e '.[test]')")
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import (  # noqa: E402
    DummyVecEnv, VecFrameStack, VecMonitor, VecNormalize, VecTransposeImage)

from rock_vec.sb3 import RockVecEnv  # noqa: E402
from same import assert_same  # noqa: E402
from sample_envs import DEVICE_ENV_ID, SpaceEnv  # noqa: E402
from sample_envs import SPACES  # noqa: E402


OBS = {"box": SPACES["box_f32"], "discrete": SPACES["discrete"], "dict": SPACES["dict"]}


@pytest.mark.parametrize("obs", list(OBS))
def test_rock_vec_env_matches_dummy_vec_env_step_by_step(obs):
    fns = [lambda: SpaceEnv(observation_space=OBS[obs], max_len=5)] * 4
    ours, ref = RockVecEnv(fns, num_workers=2), DummyVecEnv(fns)
    try:
        assert ours.observation_space == ref.observation_space and ours.action_space == ref.action_space
        for venv in (ours, ref):
            venv.seed(11)
            venv.set_options({"level": 2})
        assert_same(ours.reset(), ref.reset(), "reset")
        assert_same(ours.reset_infos, ref.reset_infos, "reset_infos")
        rng = np.random.default_rng(0)
        for t in range(40):
            actions = rng.integers(0, 3, 4)
            ours.step_async(actions)
            ref.step_async(actions)
            got, want = ours.step_wait(), ref.step_wait()
            assert_same(list(got[:3]), list(want[:3]), f"step {t}")
            assert_same(list(got[3]), list(want[3]), f"step {t} infos")
            assert_same(ours.reset_infos, ref.reset_infos, f"step {t} reset_infos")
    finally:
        ours.close()
        ref.close()


def test_seed_and_options_apply_to_the_next_reset_only():
    venv = RockVecEnv.from_id("CartPole-v1", 3)
    try:
        venv.seed(5)
        a = venv.reset()
        b = venv.reset()  # unseeded again
        venv.seed(5)
        c = venv.reset()
        np.testing.assert_array_equal(a, c)
        assert not np.array_equal(a, b)
    finally:
        venv.close()


def test_attribute_and_method_calls_take_indices():
    venv = RockVecEnv([lambda: SpaceEnv(render_mode="rgb_array")] * 4, num_workers=2)
    try:
        venv.reset()
        assert venv.get_attr("max_len") == [8] * 4
        venv.set_attr("max_len", 3, indices=[1, 3])
        assert venv.get_attr("max_len") == [8, 3, 8, 3]
        assert venv.get_attr("max_len", indices=2) == [8]
        assert venv.env_method("echo", 1, indices=range(1, 3), k=2) == [{"args": [1], "kwargs": {"k": 2}, "t": 0}] * 2
        assert venv.env_is_wrapped(gym.wrappers.TimeLimit) == [False] * 4
        assert venv.has_attr("echo") and not venv.has_attr("nope")
        images = venv.get_images()
        assert len(images) == 4 and images[0].shape == (4, 6, 3)
    finally:
        venv.close()


def test_negative_indices_count_from_the_end_as_in_a_list():
    venv = RockVecEnv([lambda: SpaceEnv()] * 4, num_workers=2)
    try:
        venv.reset()
        venv.set_attr("max_len", 5, indices=[-1])
        venv.set_attr("max_len", 6, indices=-4)
        assert venv.get_attr("max_len") == [6, 8, 8, 5]
        assert venv.get_attr("max_len", indices=[-1, 0, -3]) == [5, 6, 8]
        assert venv.env_method("echo", 7, indices=[-2]) == [{"args": [7], "kwargs": {}, "t": 0}]
        assert venv.env_is_wrapped(gym.wrappers.TimeLimit, indices=-1) == [False]
        with pytest.raises(IndexError, match="env index -5 out of range"):
            venv.get_attr("max_len", indices=[-5])
        with pytest.raises(IndexError, match="env index 4 out of range"):
            venv.get_attr("max_len", indices=4)
    finally:
        venv.close()


ACTION_SPACES = {
    "dict": gym.spaces.Dict({"move": gym.spaces.Discrete(3), "force": gym.spaces.Box(0, 1, (2,), np.float32)}),
    "tuple": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.MultiBinary(3))),
}


@pytest.mark.parametrize("name", list(ACTION_SPACES))
def test_a_list_of_per_env_actions_works_for_dict_and_tuple_spaces_like_dummy_vec_env(name):
    from sample_envs import RecorderEnv

    space = ACTION_SPACES[name]
    fns = [lambda: RecorderEnv(space)] * 3
    ours, ref = RockVecEnv(fns, num_workers=2), DummyVecEnv(fns)
    try:
        ours.reset()
        ref.reset()
        space.seed(0)
        for t in range(3):
            actions = [space.sample() for _ in range(3)]
            assert_same(ours.step(actions)[:3], ref.step(actions)[:3], f"step {t}")
            assert_same(ours.get_attr("last_action"), ref.get_attr("last_action"), f"actions {t}")
    finally:
        ours.close()
        ref.close()


@pytest.mark.parametrize("start_method", [None, "fork", "forkserver", "spawn"])
def test_subproc_vec_envs_start_methods_map_onto_the_launchers(start_method):
    venv = RockVecEnv([lambda: SpaceEnv()] * 2, start_method=start_method)
    try:
        assert venv.reset().shape == (2, 3)
        parents = {psutil.Process(pid).ppid() for pid in venv.worker_pids}
        assert (parents == {os.getpid()}) == (start_method == "spawn")  # else forked by the fork server
    finally:
        venv.close()


def test_an_unknown_start_method_raises_as_subproc_vec_env_does():
    with pytest.raises(ValueError, match="cannot find context for 'illegal_method'"):
        RockVecEnv([lambda: SpaceEnv()] * 2, start_method="illegal_method")


@pytest.mark.parametrize("option", [{"array_backend": "torch"}, {"device": "cpu"}])
def test_tensor_options_are_refused_since_sb3_takes_numpy_arrays(option):
    with pytest.raises(ValueError, match="SB3's VecEnv hands numpy arrays.*not to RockVecEnv$"):
        RockVecEnv([lambda: SpaceEnv()] * 2, **option)
    with pytest.raises(ValueError, match="SB3's VecEnv hands numpy arrays.*not to RockVecEnv.from_id$"):
        RockVecEnv.from_id("CartPole-v1", 2, **option)


def test_from_id_takes_the_envs_keywords_as_env_kwargs_when_a_name_is_also_an_option():
    with pytest.raises(TypeError, match="RockVecEnv.from_id: 'device' is both a rock_vec option"):
        RockVecEnv.from_id(DEVICE_ENV_ID, 2, device="cuda")
    venv = RockVecEnv.from_id(DEVICE_ENV_ID, 2, env_kwargs={"device": "cuda"}, envs_per_worker=1)
    try:
        assert venv.get_attr("device") == ["cuda", "cuda"]
    finally:
        venv.close()


def test_calls_out_of_order_raise_and_leave_the_pool_usable():
    from rock_vec.errors import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError

    venv = RockVecEnv.from_id("CartPole-v1", 4, envs_per_worker=2)
    try:
        venv.reset()
        with pytest.raises(NoAsyncCallError, match="without any prior call to `step_async`"):
            venv.step_wait()
        venv.step_async(np.zeros(4, np.int64))
        for call in (lambda: venv.step_async(np.zeros(4, np.int64)), venv.reset, lambda: venv.get_attr("spec")):
            with pytest.raises(AlreadyPendingCallError, match="pending call to `step`"):
                call()
        obs, rew, dones, infos = venv.step_wait()
        assert obs.shape == (4, 4) and rew.dtype == np.float32 and len(infos) == 4
        venv.step_async(np.ones(4, np.int64))
        pids = venv.worker_pids
    finally:
        venv.close()  # with a step pending: it is waited for, as SubprocVecEnv does
    assert venv.num_workers == 2 and len(pids) == 2 and venv.worker_pids == []
    assert not any(psutil.pid_exists(p) for p in pids)
    venv.close()  # idempotent
    with pytest.raises(ClosedEnvironmentError, match="after a call to `close\\(\\)`"):
        venv.reset()


def test_make_vec_env_builds_it_and_sb3_wrappers_work_on_top():
    venv = make_vec_env("CartPole-v1", n_envs=4, vec_env_cls=RockVecEnv, vec_env_kwargs={"num_workers": 2})
    try:
        assert isinstance(venv, RockVecEnv)
        wrapped = VecMonitor(VecNormalize(VecFrameStack(venv, 2)))
        obs = wrapped.reset()
        assert obs.shape == (4, 8)
        for _ in range(30):
            obs, rew, done, info = wrapped.step(np.zeros(4, np.int64))
        assert rew.dtype == np.float32 and done.dtype == bool
    finally:
        venv.close()


def test_image_envs_work_under_vec_transpose_image():
    space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    venv = RockVecEnv([lambda: SpaceEnv(observation_space=space)] * 2)
    try:
        wrapped = VecTransposeImage(venv)
        assert wrapped.reset().shape == (2, 3, 8, 8)
        obs, *_ = wrapped.step(np.zeros(2, np.int64))
        assert obs.shape == (2, 3, 8, 8)
    finally:
        venv.close()


@pytest.mark.slow
def test_ppo_learns_cartpole_through_rock_vec_env():
    from ppo_cartpole import assert_learns_cartpole

    assert_learns_cartpole(RockVecEnv.from_id("CartPole-v1", 8), "RockVecEnv", at_least=475)


def test_a_pool_built_anew_reports_what_a_replaced_worker_reports():
    """``_restarted_step`` (rock_vec.ray's pool built in place of a lost one)
    returns, type for type, what SB3's face returns when its worker is
    replaced mid-step: every env done, truncated, with its terminal
    observation and ``worker_restarted``; and the step after it."""
    from sample_envs import FailingEnv

    def venv(how, fail_step):
        fns = [lambda i=i: FailingEnv(index=i, fail_index=0, fail_step=fail_step, how=how) for i in range(3)]
        return RockVecEnv(fns, learner_envs=0, num_workers=1, on_worker_failure="restart")

    replaced, anew = venv("sigkill", 2), venv("raise", 100)
    try:
        replaced.reset(), anew.reset()
        replaced.step(np.zeros(3, np.int64))
        restart = replaced.step(np.zeros(3, np.int64))  # env 0 kills the only worker: every env restarts
        assert restart[2].all() and all(info["worker_restarted"] and info["TimeLimit.truncated"] for info in restart[3])
        assert_same(anew._restarted_step(), restart, "the restart step")
        assert_same(anew.step(np.ones(3, np.int64)), replaced.step(np.ones(3, np.int64)), "the step after it")
    finally:
        replaced.close(), anew.close()
