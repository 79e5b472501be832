"""Pools built anew with ``on_worker_failure="restart"`` (``rock_vec.ray``), on
a real three-node cluster of its own (the tests end actors and a node): the
lost pool's envs come back truncated with ``info["worker_restarted"]``, the
other envs step on exactly as SyncVectorEnv's, the pool comes back on its own
node (a dead actor) or on another (a lost node), and nothing of the old pool
stays."""

import functools
import os
import signal
import threading
import time

import numpy as np
import pytest
from clusters import alive, left_after, local_cluster, raylet_of, segments_of
from gymnasium.vector import SyncVectorEnv

import sample_envs
from same import assert_same

pytestmark = pytest.mark.ray

#: Steps of 0.1 s per env: a kill lands while a step is out.
SLOW = functools.partial(sample_envs.FailingEnv, fail_index=-1, step_seconds=0.1)
ZEROS = np.zeros(4, dtype=np.int64)


@pytest.fixture(scope="module")
def cluster():
    """Three Ray nodes of one CPU each: two pools of one CPU leave one node free."""
    with local_cluster(nodes=3, cpus=1) as nodes:
        yield [nodes["head"], *nodes["others"]]


def kill_node(node):
    raylet = raylet_of(node)
    for proc in [raylet, *raylet.children(recursive=True)]:
        proc.kill()


def gone(pool):
    """What is left of a pool that was replaced: its processes and segments."""
    return [p for p in [pool["pid"], *pool["workers"]] if alive(p)] + segments_of(pool["pid"])


def restarting(**options):
    """Four slow envs in two pools of one CPU (one worker each), lost pools built anew."""
    import rock_vec.ray

    return rock_vec.ray.AsyncVectorEnv([SLOW] * 4, pools=2, cpus_per_pool=1, learner_envs=0,
                                       on_worker_failure="restart", **options)


def step_while(envs, action, kill):
    """``envs.step(action)`` with ``kill()`` run once the step is out; its results and seconds."""
    threading.Timer(0.05, kill).start()
    started = time.monotonic()
    result = envs.step(action)
    return result, time.monotonic() - started


def test_a_killed_pool_comes_back_on_its_node_its_envs_truncated_the_others_as_sync(cluster):
    envs = restarting()
    sync = SyncVectorEnv([SLOW] * 2)  # the envs of pool 0, which lives on
    try:
        assert_same(envs.reset(seed=0)[0][:2], sync.reset(seed=0)[0], "reset")
        envs.step(ZEROS), sync.step(ZEROS[:2])
        old = dict(envs.pools[1])
        (obs, rew, term, trunc, info), _ = step_while(envs, ZEROS, lambda: os.kill(old["pid"], signal.SIGKILL))
        kept = sync.step(ZEROS[:2])
        assert_same((obs[:2], rew[:2], term[:2], trunc[:2]), kept[:4], "the pool that lived on")
        assert trunc.tolist() == [False, False, True, True] and not term.any()
        assert info["_worker_restarted"].tolist() == [False, False, True, True]
        assert obs[2:].tolist() == [[0, 0], [0, 0]] and rew[2:].tolist() == [0.0, 0.0]
        new = envs.pools[1]
        assert new["node"] == old["node"] and new["pid"] != old["pid"]  # its node lives: back there
        for t in range(3):  # NEXT_STEP: the step after the truncation is the reset, then fresh steps
            obs, *_ = envs.step(ZEROS)
            kept = sync.step(ZEROS[:2])
            assert_same(obs[:2], kept[0], f"step {t} after")
            assert obs[2:].tolist() == [[t, t], [t, t]]
        assert not left_after(5, lambda: gone(old))
    finally:
        envs.close()


def test_a_lost_node_brings_its_pool_back_on_another_node(cluster):
    envs = restarting()
    try:
        envs.reset(seed=0)
        index, lost = next((i, dict(p)) for i, p in enumerate(envs.pools) if p["node"] != cluster[0])
        used = {p["node"] for p in envs.pools}
        (obs, rew, term, trunc, info), seconds = step_while(envs, ZEROS, lambda: kill_node(lost["node"]))
        lo, hi = envs.ranges[index]
        assert trunc[lo:hi].all() and info["worker_restarted"][lo:hi].all()
        assert not trunc[[i for i in range(4) if not lo <= i < hi]].any()
        free = (set(cluster) - used).pop()
        assert envs.pools[index]["node"] == free  # the only node with a free CPU
        assert seconds < 20, f"the step took {seconds:.1f} s"  # 2.5 s of silence, then a pool started anew
        envs.step(ZEROS)
        assert envs.step(ZEROS)[0][lo:hi].tolist() == [[1, 1]] * (hi - lo)
        assert not left_after(5, lambda: gone(lost))
    finally:
        envs.close()


def test_a_pool_that_keeps_dying_spends_its_budget_then_the_env_breaks(cluster):
    from rock_vec.errors import WorkerDiedError

    envs = restarting(max_restarts=1)
    try:
        envs.reset(seed=0)
        step_while(envs, ZEROS, lambda: os.kill(envs.pools[0]["pid"], signal.SIGKILL))  # restart 1
        envs.step(ZEROS)  # NEXT_STEP: the reset of the truncated envs (no env steps: too quick to kill in)
        pid = envs.pools[0]["pid"]
        with pytest.raises(WorkerDiedError, match=r"(?s)pool 0 .*\(restart budget of 1 spent\)"):
            step_while(envs, ZEROS, lambda: os.kill(pid, signal.SIGKILL))
        with pytest.raises(WorkerDiedError):  # broken from then on, loudly
            envs.step(ZEROS)
    finally:
        envs.close()


def test_a_call_whose_pool_is_built_anew_raises_and_the_env_goes_on(cluster):
    from rock_vec.errors import WorkerDiedError

    envs = restarting()
    try:
        envs.reset(seed=0)
        os.kill(envs.pools[1]["pid"], signal.SIGKILL)
        with pytest.raises(WorkerDiedError, match="(?s)it was restarted on node .* the call.s results are lost"):
            envs.get_attr("index")
        envs.reset(seed=0)  # the pool built anew needs its reset, as any fresh env
        assert envs.get_attr("index") == (0, 0, 0, 0)
        assert envs.step(ZEROS)[0].tolist() == [[1, 1]] * 4
    finally:
        envs.close()


def test_send_recv_gets_the_restarted_step_of_a_pool_lost_in_flight(cluster):
    envs = restarting(batch_size=4)
    try:
        envs.async_reset(seed=0)
        envs.recv()
        old = dict(envs.pools[0])
        envs.send(ZEROS)
        os.kill(old["pid"], signal.SIGKILL)
        obs, rew, term, trunc, info = envs.recv()
        assert info["env_id"].tolist() == [0, 1, 2, 3]
        assert trunc.tolist() == [True, True, False, False]
        assert info["_worker_restarted"].tolist() == [True, True, False, False]
        assert obs.tolist() == [[0, 0], [0, 0], [1, 1], [1, 1]]
        assert not left_after(5, lambda: gone(old))
    finally:
        envs.close()


def test_sb3_face_reports_a_lost_pool_as_done_and_restarted(cluster):
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 is not installed")
    import rock_vec.ray.sb3

    venv = rock_vec.ray.sb3.RockVecEnv([SLOW] * 4, pools=2, cpus_per_pool=1, learner_envs=0,
                                      on_worker_failure="restart")
    try:
        venv.reset()
        pid = venv.pools[1]["pid"]
        threading.Timer(0.05, os.kill, [pid, signal.SIGKILL]).start()
        obs, rew, dones, infos = venv.step(ZEROS)
        assert dones.tolist() == [False, False, True, True] and rew.dtype == np.float32
        for info in infos[2:]:
            assert info["worker_restarted"] and info["TimeLimit.truncated"]
            assert info["terminal_observation"].tolist() == [0, 0]
        assert "worker_restarted" not in infos[0]
        assert venv.step(ZEROS)[0].tolist() == [[2, 2], [2, 2], [1, 1], [1, 1]]
    finally:
        venv.close()
