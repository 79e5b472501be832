"""One VectorEnv over rock_vec pools on many Ray nodes (``rock_vec.ray.make_vec``,
``rock_vec.ray.AsyncVectorEnv``), on a real cluster of three nodes on this
machine: results exactly SyncVectorEnv's, a dead pool named, nothing left."""

import functools
import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest
from clusters import alive, left_after, local_cluster, segments_of
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import sample_envs
from same import assert_lockstep

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    """Three Ray nodes of one CPU each."""
    with local_cluster(nodes=3, cpus=1) as nodes:
        yield [nodes["head"], *nodes["others"]]


def space_envs(n, obs="dict", act="multi_discrete"):
    make = functools.partial(sample_envs.SpaceEnv, sample_envs.SPACES[obs], sample_envs.SPACES[act])
    return [make] * n


def processes_of(envs):
    return [p for pool in envs.pools for p in [pool["pid"], *pool["workers"]]]


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_pools_on_every_node_step_exactly_as_sync_vector_env(cluster, mode):
    import rock_vec.ray

    envs = rock_vec.ray.AsyncVectorEnv(space_envs(8), autoreset_mode=mode)  # pools="auto": one per node
    assert sorted(p["node"] for p in envs.pools) == sorted(cluster)
    assert envs.ranges == [(0, 3), (3, 5), (5, 8)]
    assert envs.metadata["autoreset_mode"] == mode
    assert envs.single_observation_space == sample_envs.SPACES["dict"]
    assert_lockstep(envs, SyncVectorEnv(space_envs(8), autoreset_mode=mode), steps=60, seed=5)


def test_tuples_text_and_copy_false_give_the_same_arrays_each_step(cluster):
    import rock_vec.ray

    fns = space_envs(5, obs="nested", act="discrete")
    assert_lockstep(rock_vec.ray.AsyncVectorEnv(fns, pools=2), SyncVectorEnv(fns), steps=30, seed=[1, 2, 3, 4, 5])
    envs = rock_vec.ray.AsyncVectorEnv(space_envs(4, obs="box_f32"), pools=2, copy=False)
    try:
        first, _ = envs.reset(seed=0)
        again = envs.step(envs.action_space.sample())[0]
        assert again is first and first.flags.writeable  # the learner's own array, as Sync's with copy=False
    finally:
        envs.close()


def test_make_vec_builds_an_id_only_the_driver_registered_on_every_node(cluster):
    import rock_vec.ray

    gym.register("RockVecDriverOnly-v0", entry_point="sample_envs:SpaceEnv", max_episode_steps=4,
                 kwargs={"observation_space": sample_envs.SPACES["box_f32"]})
    try:
        envs = rock_vec.ray.make_vec("RockVecDriverOnly-v0", num_envs=6, pools=3, max_len=20)
        assert len({p["node"] for p in envs.pools}) == 3  # SPREAD: one pool on each node
        ref = SyncVectorEnv([lambda: gym.make("RockVecDriverOnly-v0", max_len=20)] * 6)
        assert_lockstep(envs, ref, steps=20, seed=9)
    finally:
        gym.registry.pop("RockVecDriverOnly-v0")
    # "module:id": the module registers the id wherever it is imported.
    from rock_vec.synthetic import SYNTHETIC_MAKE_ID

    envs = rock_vec.ray.make_vec(SYNTHETIC_MAKE_ID, num_envs=4, pools=2, obs_shape=(3,), obs_dtype="float32")
    ref = SyncVectorEnv([lambda: gym.make(SYNTHETIC_MAKE_ID, obs_shape=(3,), obs_dtype="float32")] * 4)
    assert_lockstep(envs, ref, steps=20, seed=2)


def test_calls_and_attributes_reach_every_env_in_order(cluster):
    import rock_vec.ray

    envs = rock_vec.ray.AsyncVectorEnv(space_envs(5), pools=2)
    try:
        envs.reset(seed=0)
        envs.set_attr("max_len", [10, 11, 12, 13, 14])
        assert envs.get_attr("max_len") == (10, 11, 12, 13, 14)
        assert envs.call("echo", 1, k=2) == tuple({"args": [1], "kwargs": {"k": 2}, "t": 0} for _ in range(5))
        with pytest.raises(ValueError, match="Values must be a list or tuple with length equal to the number"):
            envs.set_attr("max_len", [1, 2])
    finally:
        envs.close()


def test_bad_arguments_are_refused_before_any_pool_starts(cluster):
    import rock_vec.ray

    with pytest.raises(ValueError, match="pools must be 'auto' or a positive int, got 0"):
        rock_vec.ray.AsyncVectorEnv(space_envs(2), pools=0)
    with pytest.raises(ValueError, match="3 pools cannot share 2 envs"):
        rock_vec.ray.AsyncVectorEnv(space_envs(2), pools=3)
    with pytest.raises(RuntimeError, match="no live Ray node has 4 CPU"):
        rock_vec.ray.AsyncVectorEnv(space_envs(2), cpus_per_pool=4)
    with pytest.raises(TypeError, match="envs_per_wrker"):
        rock_vec.ray.AsyncVectorEnv(space_envs(2), envs_per_wrker=1)
    with pytest.raises(gym.error.Error):
        rock_vec.ray.make_vec("NoSuchEnv-v9", num_envs=2)


def test_an_env_error_in_a_pool_is_raised_as_the_env_raised_it(cluster):
    import rock_vec.ray

    fns = [functools.partial(sample_envs.FailingEnv, index=i, fail_index=3, fail_step=2) for i in range(4)]
    envs = rock_vec.ray.AsyncVectorEnv(fns, pools=2)
    try:
        envs.reset(seed=0)
        envs.step(np.zeros(4, dtype=np.int64))
        with pytest.raises(KeyError, match="boom in env 3"):
            envs.step(np.zeros(4, dtype=np.int64))
    finally:
        envs.close()


def test_a_dead_pool_is_named_with_its_node_and_envs_and_close_leaves_nothing_anywhere(cluster):
    from rock_vec.errors import WorkerDiedError
    import rock_vec.ray

    envs = rock_vec.ray.AsyncVectorEnv(space_envs(6), learner_envs=0)  # every env in a worker process
    envs.reset(seed=0)
    actions = envs.action_space.sample()
    envs.step(actions)
    processes = processes_of(envs)
    doomed = envs.pools[1]
    assert doomed["workers"] and all(alive(p) for p in processes)
    os.kill(doomed["pid"], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(WorkerDiedError) as err:
        envs.step(actions)
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert f"pool 1 (node {doomed['node']} at {doomed['address']}, actor pid {doomed['pid']}; envs 2..3)" in message
    assert err.value.env_ids == [2, 3] and err.value.worker == 1
    # The dead actor's fork server removes its workers and segment.
    assert not left_after(5, lambda: [p for p in [doomed["pid"], *doomed["workers"]] if alive(p)])
    assert not left_after(5, lambda: segments_of(doomed["pid"]))
    envs.close()
    assert not left_after(10, lambda: [p for p in processes if alive(p)])
    assert not left_after(5, lambda: [s for pool in envs.pools for s in segments_of(pool["pid"])])


def test_a_frozen_pool_is_found_by_its_missed_pings_within_3_s(cluster):
    from rock_vec.errors import WorkerDiedError
    import rock_vec.ray

    envs = rock_vec.ray.AsyncVectorEnv(space_envs(4), pools=2)
    envs.reset(seed=0)
    frozen = envs.pools[0]
    processes = processes_of(envs)
    os.kill(frozen["pid"], signal.SIGSTOP)  # Ray sees a live actor that never answers
    start = time.monotonic()
    with pytest.raises(WorkerDiedError, match=r"pool 0 .* no answer to rock_vec's pings for \d\.\d s"):
        envs.step(envs.action_space.sample())
    assert time.monotonic() - start < 3.2
    with pytest.raises(WorkerDiedError, match="pool 0"):  # the env stays broken, as a pool whose worker died
        envs.step(envs.action_space.sample())
    envs.close()  # kills the frozen actor without waiting for it
    assert not left_after(10, lambda: [p for p in processes if alive(p)])
    assert not left_after(5, lambda: [s for pool in envs.pools for s in segments_of(pool["pid"])])


def _action(env, t):
    return (3 * env + t) % 3


def test_send_recv_returns_whole_pools_and_every_env_steps_as_under_sync(cluster):
    import rock_vec.ray

    fns = space_envs(6, obs="box_f32", act="discrete")
    envs = rock_vec.ray.AsyncVectorEnv(fns, pools=2, batch_size=3)
    seen = {i: [] for i in range(6)}
    try:
        envs.async_reset(seed=11)
        for _ in range(40):
            obs, rew, term, trunc, info = envs.recv()
            ids = info["env_id"]
            assert ids.dtype == np.int32 and sorted(ids.tolist()) in ([0, 1, 2], [3, 4, 5])
            for k, i in enumerate(ids.tolist()):
                seen[i].append((obs[k], rew[k], term[k], trunc[k]))
            envs.send(np.array([_action(i, len(seen[i]) - 1) for i in ids.tolist()]), ids)
    finally:
        envs.close()
    ref = SyncVectorEnv(fns)
    try:
        steps = min(len(v) for v in seen.values())
        assert steps >= 5
        obs, _ = ref.reset(seed=11)
        rew, term, trunc = np.zeros(6), np.zeros(6, bool), np.zeros(6, bool)
        for t in range(steps):
            for i in range(6):
                got = seen[i][t]
                np.testing.assert_array_equal(got[0], obs[i])
                assert (got[1], got[2], got[3]) == (rew[i], term[i], trunc[i]), (i, t)
            obs, rew, term, trunc, _ = ref.step(np.array([_action(i, t) for i in range(6)]))
    finally:
        ref.close()


def test_recv_returns_the_first_pools_to_finish_and_refuses_what_cannot_be_done(cluster):
    import rock_vec.ray
    from rock_vec.errors import NoAsyncCallError, RockVecError

    fns = [functools.partial(sample_envs.FailingEnv, fail_index=-1, step_seconds=0.3 if i < 2 else 0.0)
           for i in range(4)]
    with pytest.raises(ValueError, match=r"batch_size=3: recv returns whole pools"):
        rock_vec.ray.AsyncVectorEnv(fns, pools=2, batch_size=3)
    envs = rock_vec.ray.AsyncVectorEnv(fns, pools=2, batch_size=2)
    try:
        with pytest.raises(NoAsyncCallError, match="Calling `recv` without any env running"):
            envs.recv()
        envs.async_reset(seed=0)
        ready = [envs.recv()[4]["env_id"].tolist() for _ in range(2)]
        assert sorted(ready) == [[0, 1], [2, 3]]
        with pytest.raises(ValueError, match=r"send steps whole pools: pool 0 has envs 0..1, env_id gave \[1\]"):
            envs.send(np.zeros(1, np.int64), [1])
        envs.send(np.zeros(4, np.int64))
        assert envs.recv()[4]["env_id"].tolist() == [2, 3]  # the slow pool is not waited for
        with pytest.raises(ValueError, match=r"envs 0..1 are already running"):
            envs.send(np.zeros(2, np.int64), [0, 1])
        with pytest.raises(RockVecError, match="`step` while envs are running"):
            envs.step(np.zeros(4, np.int64))
        assert envs.recv()[4]["env_id"].tolist() == [0, 1]
        obs, rew, term, trunc, info = envs.step(np.zeros(4, np.int64))  # nothing running: step goes on from there
        assert obs.shape == (4, 2) and rew.tolist() == [1.0] * 4
    finally:
        envs.close()


DRIVER = """
import json, sys, time
import ray, rock_vec.ray, sample_envs, functools
ray.init(address=sys.argv[1])
fn = functools.partial(sample_envs.SpaceEnv, sample_envs.SPACES["box_f32"])
envs = rock_vec.ray.AsyncVectorEnv([fn] * 6, learner_envs=0)
envs.reset(seed=0)
print(json.dumps(envs.pools), flush=True)
while True:
    envs.step(envs.action_space.sample())
"""


def test_a_sigkilled_learner_leaves_nothing_on_any_node(cluster, tmp_path):
    import json
    import subprocess
    import sys

    import ray
    from clusters import TESTS

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen([sys.executable, str(script), ray.get_runtime_context().gcs_address], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        pools = json.loads(driver.stdout.readline())
        assert len({p["node"] for p in pools}) == 3
        processes = [q for p in pools for q in [p["pid"], *p["workers"]]]
        assert all(alive(q) for q in processes)
        time.sleep(0.5)  # mid-training
        driver.kill()
        driver.wait()
        assert not left_after(15, lambda: [q for q in processes if alive(q)])
        assert not left_after(5, lambda: [s for p in pools for s in segments_of(p["pid"])])
    finally:
        driver.kill()


# ---- the SB3 face over the same pools ----


def short_cartpole():
    return gym.make("CartPole-v1", max_episode_steps=15)


def _sb3_lockstep(ours, ref, steps, seed):
    from same import assert_same

    try:
        ours.seed(seed)
        ref.seed(seed)
        assert_same(ours.reset(), ref.reset(), "reset")
        assert_same(ours.reset_infos, ref.reset_infos, "reset_infos")
        space = ref.action_space
        space.seed(seed)
        for t in range(steps):
            actions = np.stack([space.sample() for _ in range(ref.num_envs)])
            assert_same(ours.step(actions), ref.step(actions), f"step {t}")
    finally:
        ours.close()
        ref.close()


@pytest.mark.parametrize("env_fn", [short_cartpole, functools.partial(sample_envs.SpaceEnv, sample_envs.SPACES["dict"])],
                         ids=["cartpole", "dict_obs"])
def test_sb3_face_steps_exactly_as_dummy_vec_env(cluster, env_fn):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rock_vec.ray.sb3 import RockVecEnv

    ours = RockVecEnv([env_fn] * 5)
    assert sorted(p["node"] for p in ours.pools) == sorted(cluster)
    _sb3_lockstep(ours, DummyVecEnv([env_fn] * 5), steps=60, seed=3)


def test_sb3_face_reaches_the_envs_asked_for_across_pools(cluster):
    from rock_vec.ray.sb3 import RockVecEnv

    venv = RockVecEnv.from_id("CartPole-v1", 5, pools=2)
    try:
        venv.reset()
        venv.set_attr("custom", 7, indices=[0, 4])
        assert venv.get_attr("custom", indices=[4, 0]) == [7, 7]
        assert venv.env_method("get_wrapper_attr", "gravity", indices=[3, 1]) == [9.8, 9.8]
        assert venv.env_is_wrapped(gym.wrappers.TimeLimit) == [True] * 5
        assert venv.has_attr("custom") is False and venv.has_attr("gravity") is True
        with pytest.raises(IndexError, match="env index 5 out of range"):
            venv.get_attr("custom", indices=[5])
    finally:
        venv.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sb3_ppo_learns_cartpole_through_pools_on_three_nodes(cluster):
    from ppo_cartpole import assert_learns_cartpole

    from rock_vec.ray.sb3 import RockVecEnv

    assert_learns_cartpole(RockVecEnv.from_id("CartPole-v1", 8), "rock_vec.ray.sb3.RockVecEnv on 3 nodes", at_least=450)


def test_pools_ray_cannot_place_fail_after_the_start_timeout_and_leave_nothing(cluster, monkeypatch):
    import ray

    import rock_vec.ray
    from rock_vec.errors import TimeoutError
    from rock_vec.ray import actors

    monkeypatch.setattr(actors, "START_TIMEOUT_S", 3.0)
    with pytest.raises(TimeoutError, match=r"of 4 pools had not started within 3 s \(Ray starts an actor only where "
                                           r"its CPUs are free: 1 CPU\(s\) each; CPUs free in the cluster now: 0\)"):
        rock_vec.ray.AsyncVectorEnv(space_envs(4), pools=4)  # 3 nodes of 1 CPU
    assert not left_after(10, lambda: ray.available_resources().get("CPU", 0) < 3)  # every actor ended
