"""EnvPool-style send/recv (asked for by the peers' users; EnvPool's own returns empty
arrays on a second recv and cannot reset the rest of the pool): partial batches with env ids,
defined blocking, a full-pool reset at any time."""

import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import AlreadyPendingCallError, NoAsyncCallError
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rock_vec
from sample_envs import SPACES, FailingEnv, SpaceEnv
from same import assert_same


def per_env_actions(num_envs, steps, space, seed=0):
    space = gym.vector.utils.batch_space(space, num_envs)
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("obs", ["box_f32", "dict", "text", "sequence_codec"])
@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_every_env_follows_the_same_trajectory_as_in_sync(mode, obs, batch_size):
    num_envs, steps = 6, 12
    fn = lambda: SpaceEnv(observation_space=SPACES[obs], max_len=4)  # noqa: E731
    actions = per_env_actions(num_envs, steps, gym.spaces.Discrete(3))
    ref = SyncVectorEnv([fn] * num_envs, autoreset_mode=mode)
    want = [ref.reset(seed=7)] + [ref.step(a) for a in actions]
    ours = rock_vec.AsyncVectorEnv([fn] * num_envs, autoreset_mode=mode, batch_size=batch_size, num_workers=3)
    try:
        ours.async_reset(seed=7)
        t = np.zeros(num_envs, int)  # how many results each env has returned
        got: dict[int, list] = {i: [] for i in range(num_envs)}
        while t.min() <= steps:
            obs_b, rew, term, trunc, info = ours.recv(timeout=10)
            ids = info["env_id"]
            for k, i in enumerate(ids.tolist()):
                item = obs_b[k] if not isinstance(obs_b, (dict, tuple)) else (
                    {key: v[k] for key, v in obs_b.items()} if isinstance(obs_b, dict) else obs_b[k])
                got[i].append((item, rew[k], term[k], trunc[k]))
            t[ids] += 1
            send = ids[t[ids] <= steps]
            if len(send):
                ours.send(np.array([actions[t[i] - 1][i] for i in send]), send)
            if t.min() > steps:
                break
            if ours._batches.in_flight < batch_size:  # the pool is winding down: drain the rest
                break
        for i in range(num_envs):
            for step, result in enumerate(got[i][: steps + 1]):
                if step == 0:
                    ref_obs = want[0][0]
                    expect = (ref_obs[i] if not isinstance(ref_obs, (dict, tuple)) else
                              {k: v[i] for k, v in ref_obs.items()} if isinstance(ref_obs, dict) else ref_obs[i])
                    assert_same(result[0], expect, f"env {i} reset obs")
                    continue
                ref_obs, ref_rew, ref_term, ref_trunc, _ = want[step]
                expect = (ref_obs[i] if not isinstance(ref_obs, (dict, tuple)) else
                          {k: v[i] for k, v in ref_obs.items()} if isinstance(ref_obs, dict) else ref_obs[i])
                assert_same(result[0], expect, f"env {i} step {step} obs")
                assert (result[1], result[2], result[3]) == (ref_rew[i], ref_term[i], ref_trunc[i]), f"env {i} step {step}"
    finally:
        ours.close()
        ref.close()


def test_same_step_rows_carry_final_obs_and_infos():
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv(max_len=2)] * 4, autoreset_mode="SameStep", batch_size=2)
    try:
        envs.async_reset(seed=0)
        seen_final = False
        for _ in range(20):
            obs, rew, term, trunc, info = envs.recv(timeout=5)
            assert info["env_id"].dtype == np.int32 and info["env_id"].shape == (2,)
            done = term | trunc
            if done.any():
                assert info["_final_obs"].tolist() == done.tolist()
                seen_final = True
            envs.send(np.zeros(2, np.int64), info["env_id"])
        assert seen_final
    finally:
        envs.close()


def test_fast_envs_are_not_held_back_by_slow_ones():
    fns = [lambda i=i: FailingEnv(index=i, fail_index=-1, step_seconds=0.05 if i < 2 else 0.0) for i in range(8)]
    envs = rock_vec.AsyncVectorEnv(fns, num_workers=8, batch_size=2)
    try:
        envs.async_reset()
        steps = np.zeros(8, int)
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            _, _, _, _, info = envs.recv(timeout=5)
            steps[info["env_id"]] += 1
            envs.send(np.zeros(2, np.int64), info["env_id"])
        assert steps[2:].min() > 10 * steps[:2].max(), steps
    finally:
        envs.close()


def test_recv_without_anything_running_raises_instead_of_returning_empty_arrays():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, batch_size=4)
    try:
        with pytest.raises(NoAsyncCallError):
            envs.recv()
        envs.async_reset(seed=0)
        obs, *_ = envs.recv(timeout=5)
        assert obs.shape == (4, 4)
        with pytest.raises(NoAsyncCallError):  # envpool#259: a second recv returned empty arrays
            envs.recv()
    finally:
        envs.close()


def test_recv_that_could_never_fill_a_batch_raises():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, batch_size=2)
    try:
        envs.async_reset(seed=0)
        _, _, _, _, info = envs.recv(timeout=5)
        _, _, _, _, info2 = envs.recv(timeout=5)
        envs.send(np.zeros(1, np.int64), info["env_id"][:1])
        with pytest.raises(rock_vec.RockVecError, match="only 1 envs are running, fewer than batch_size=2"):
            envs.recv()
    finally:
        envs.close()


def test_async_reset_resets_the_whole_pool_any_time():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=5, batch_size=2)
    try:
        envs.async_reset(seed=0)
        envs.recv(timeout=5)  # 3 envs still running
        envs.async_reset(seed=1)  # envpool#63: reset everything again
        ids = np.concatenate([envs.recv(timeout=5)[4]["env_id"] for _ in range(2)])
        assert len(set(ids.tolist())) == 4
        with pytest.raises(AlreadyPendingCallError):  # the last env still runs
            envs.step(np.zeros(5, np.int64))
        envs.async_reset()
        envs.recv(timeout=5), envs.recv(timeout=5)
        with pytest.raises(rock_vec.RockVecError, match="only 1 envs are running"):
            envs.recv()
    finally:
        envs.close()


@pytest.mark.parametrize("env_id,actions,match", [
    ([0, 9], np.zeros(2, np.int64), r"env_id \[9\] out of range"),
    ([1, 1], np.zeros(2, np.int64), "repeats"),
    ([0, 1], np.zeros(3, np.int64), r"holds 3 actions for 2 envs"),
    ([[0, 1]], np.zeros(2, np.int64), "1-D"),
])
def test_send_misuse_is_refused_before_anything_runs(env_id, actions, match):
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, batch_size=4)
    try:
        envs.async_reset(seed=0)
        envs.recv(timeout=5)
        with pytest.raises(ValueError, match=match):
            envs.send(actions, env_id)
        envs.send(np.zeros(2, np.int64), [0, 1])
        with pytest.raises(ValueError, match=r"envs \[1\] are already running"):
            envs.send(np.zeros(2, np.int64), [1, 2])
        envs.send(np.zeros(2, np.int64), [2, 3])
        obs, *_, info = envs.recv(timeout=5)
        assert sorted(info["env_id"].tolist()) == [0, 1, 2, 3]
    finally:
        envs.close()


@pytest.mark.parametrize("how,error,match", [("raise", KeyError, "boom in env 1"),
                                              ("huge_info", ValueError, "env 1"),  # over the row's 4096 bytes
                                              ("bad_obs", ValueError, "env 1")])  # another shape
def test_an_env_that_raises_or_whose_result_cannot_be_written_during_send_fails_recv_and_the_pool_recovers(
        how, error, match):
    fns = [lambda i=i: FailingEnv(index=i, fail_index=1, fail_step=1, how=how) for i in range(4)]
    envs = rock_vec.AsyncVectorEnv(fns, batch_size=4, num_workers=2)
    try:
        envs.async_reset()
        envs.recv(timeout=5)
        envs.send(np.zeros(4, np.int64))
        with pytest.raises(error, match=match):
            envs.recv(timeout=5)
        envs.async_reset()
        obs, *_ = envs.recv(timeout=5)
        assert obs.shape == (4, 2)
    finally:
        envs.close()


def test_the_learners_own_envs_step_within_one_recv_even_when_workers_fill_every_batch():
    """The learner's share steps in recv only while the block is not full, but an env of it that a
    recv left queued steps at the next: sent envs never starve behind faster workers."""
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, batch_size=2, learner_envs=2, num_workers=1)
    try:
        assert envs.split.learner_envs == 2
        envs.async_reset(seed=0)
        last_seen = {}
        for t in range(40):
            *_, info = envs.recv(timeout=5)
            for i in info["env_id"].tolist():
                last_seen[i] = t
            envs.send(np.zeros(2, np.int64), info["env_id"])
            time.sleep(0.002)  # the worker fills the next block before the learner asks
        assert sorted(last_seen) == [0, 1, 2, 3]
        assert min(last_seen.values()) >= 40 - 4, last_seen  # every env came back in the last rounds
    finally:
        envs.close()


def test_a_dead_worker_fails_recv_naming_its_envs_in_flight():
    fns = [lambda i=i: FailingEnv(index=i, fail_index=3, fail_step=1, how="sigkill") for i in range(4)]
    envs = rock_vec.AsyncVectorEnv(fns, batch_size=4, num_workers=2)
    try:
        envs.async_reset()
        envs.recv(timeout=5)
        envs.send(np.zeros(4, np.int64))
        started = time.monotonic()
        with pytest.raises(rock_vec.WorkerDiedError, match=r"worker 1 .*SIGKILL.* with envs \[2, 3\] in flight"):
            envs.recv(timeout=5)
        assert time.monotonic() - started < 0.2
    finally:
        envs.close()


def test_recv_timeout_bounds_the_call():
    import multiprocessing

    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv(step_seconds=0.5)] * 2, batch_size=2, learner_envs=0)
    try:
        envs.async_reset()
        envs.recv(timeout=5)
        envs.send(np.zeros(2, np.int64))
        started = time.monotonic()
        with pytest.raises(multiprocessing.TimeoutError):
            envs.recv(timeout=0.1)
        assert time.monotonic() - started < 0.3
        obs, *_ = envs.recv(timeout=5)
        assert obs.shape == (2, 2)
    finally:
        envs.close()


def test_close_with_envs_still_running_reaps_everything():
    import os

    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv(step_seconds=0.05)] * 4, batch_size=2, num_workers=2)
    envs.async_reset()
    *_, info = envs.recv(timeout=5)
    envs.send(np.zeros(2, np.int64), info["env_id"])  # all 4 envs running now
    pids = envs.worker_pids
    started = time.monotonic()
    envs.close()
    assert time.monotonic() - started < 2.0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def obs_policy(obs: np.ndarray) -> np.ndarray:
    """Deterministic given each env's observation alone."""
    return (np.abs(obs.reshape(len(obs), -1)).sum(axis=1) * 1000).astype(np.int64) % 3


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_the_overlapped_loop_gives_every_env_the_plain_loops_trajectory(mode):
    """README's loop that never waits: halves of the pool alternate through
    step_envs; with a policy that depends only on each env's observation,
    each env goes through exactly the states of the plain step loop."""
    num_envs, steps = 6, 15
    fn = lambda: SpaceEnv(max_len=5)  # noqa: E731
    ref = SyncVectorEnv([fn] * num_envs, autoreset_mode=mode)
    obs, _ = ref.reset(seed=3)
    want = {i: [obs[i]] for i in range(num_envs)}
    for _ in range(steps):
        obs, rew, term, trunc, _ = ref.step(obs_policy(obs))
        for i in range(num_envs):
            want[i].append(obs[i])
    ref.close()
    envs = rock_vec.AsyncVectorEnv([fn] * num_envs, autoreset_mode=mode, batch_size=num_envs // 2)
    try:
        assert envs.split.learner_envs == 0  # halves smaller than the pool keep the learner free
        envs.async_reset(seed=3)
        got = {i: [] for i in range(num_envs)}
        obs, rew, term, trunc, info = envs.recv(timeout=10)
        while min(len(g) for g in got.values()) <= steps:
            ids = info["env_id"]
            for k, i in enumerate(ids.tolist()):
                got[i].append(obs[k])
            obs, rew, term, trunc, info = envs.step_envs(obs_policy(obs), ids, timeout=10)
        for i in range(num_envs):
            for t in range(steps + 1):
                np.testing.assert_array_equal(got[i][t], want[i][t], err_msg=f"env {i} step {t}")
    finally:
        envs.close()
