"""``rock-vec bench --suite ray``: it starts its own local cluster, measures
rock_vec.ray against the local pool and the baselines side by side, prints
the targets and the driver's cost model, and leaves no Ray process behind."""

import json
import os
import re

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rock_vec.bench.runners import import_error

pytestmark = pytest.mark.ray


def ray_processes():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"rv-ray-" in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_the_ray_suite_runs_on_its_own_cluster_and_leaves_nothing(capsys, tmp_path):
    from rock_vec.cli import main as cli

    out_json = tmp_path / "ray.json"
    code = cli.main(["bench", "--suite", "ray", "--repeats", "1", "--seconds", "0.2", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(out_json.read_text())
    rows = data["results"]
    runners = ["ray_rock_vec", "ray_rock_vec_async", "rock_vec", "ray_actor_per_env"]
    if not import_error("pufferlib.vector"):
        runners.append("pufferlib_ray")
    else:
        assert "note: skipped pufferlib_ray: pufferlib is not installed" in out
    assert [(r["workload"], r["runner"]) for r in rows] == [
        (w, r) for w in ("busy1000", "busy100", "cartpole") for r in runners]
    for r in rows:
        assert r["samples"][0] > 0 and r["peer"] == "rock_vec"
        if r["runner"] == "ray_rock_vec" and r["workload"] == "busy1000":
            assert r["target"] == 0.9 and r["num_workers"] == 2  # a worker in each node's pool
            assert {v["over"] for v in r["versus"]} >= {"ray_actor_per_env"}
    assert re.search(r"target: busy1000 x16 ray_rock_vec over ray_actor_per_env: [0-9.]+x \(>= 3.00: (met|missed)\)",
                     out)
    costs = data["driver_costs"]
    assert [(c["pools"], c["measured"]) for c in costs] == [(1, True), (2, True), (4, False), (16, False),
                                                            (64, False)]
    assert all(c["driver_us"] > 0 and c["most_steps_per_s"] == pytest.approx(1e6 / c["driver_us"]) for c in costs)
    assert "the learner's own cost of rock_vec.ray's step" in out
    assert not ray_processes()  # the suite's cluster is gone


def test_one_actor_per_env_steps_as_sync_vector_env_in_same_step_mode():
    """The baseline is a real vector env: every env in an actor of its own,
    reset there when it ends (SyncVectorEnv's SAME_STEP)."""
    import gymnasium as gym

    from rock_vec.bench.peers import ActorPerEnv
    from rock_vec.ray.cluster import local_cluster

    fns = [lambda: gym.make("CartPole-v1")] * 3
    with local_cluster(nodes=2, cpus=1):
        envs, sync = ActorPerEnv(fns), SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
        try:
            obs, _ = envs.reset(seed=3)
            assert np.array_equal(obs, sync.reset(seed=3)[0])
            rng = np.random.default_rng(0)
            for _ in range(40):
                actions = rng.integers(0, 2, 3)
                ours, theirs = envs.step(actions), sync.step(actions)
                for a, b in zip(ours[:4], theirs[:4]):
                    assert a.dtype == b.dtype and np.array_equal(a, b)
        finally:
            envs.close(), sync.close()
