"""The benchmarks' workloads, runners, layouts and preset suites
(``rock_vec.bench``), called directly rather than through ``rock-vec bench``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rock_vec.bench.drivers import start
from rock_vec.bench.peers import gym_sync_envs
from rock_vec.bench.runners import Runner, SWEEP_LAYOUTS, layouts_for, make_envs, unavailable
from rock_vec.bench.suites import RUNNERS, SUITES, quick_settings, run_suite
from rock_vec.bench.timing import measure
from rock_vec.bench.workloads import WORKLOADS
from rock_vec.synthetic import SyntheticEnv


def test_quick_settings_measure_16_envs_for_at_most_20_seconds():
    quick = quick_settings()
    assert quick["env_counts"] == [16] and quick["layouts"] == [None]
    assert len(quick["workloads"]) * quick["repeats"] * quick["seconds"] * len(RUNNERS) <= 20


def test_layouts_for_caps_at_num_envs_and_drops_repeated_worker_counts():
    assert layouts_for(SWEEP_LAYOUTS, 1) == [None, 1]
    assert layouts_for(SWEEP_LAYOUTS, 4) == [None, 1, 2, 4]
    assert layouts_for(SWEEP_LAYOUTS, 64) == [None, 1, 2, 4, 8, 16, 32]
    assert layouts_for([8, 8, 3], 6) == [3]


def test_run_suite_reports_default_and_best_layout():
    lines = []
    rows = run_suite(["cartpole"], [2], repeats=2, seconds=0.05, layouts=[None, 2],
                           runners=["rock_vec", "gym_sync"], warmup=0.01, progress=lines.append)
    ours = [r for r in rows if r["runner"] == "rock_vec"]
    assert [r["layout"] for r in ours] == ["default", "epw=2"]  # learner 1 + 1 worker, then 1 worker of 2
    assert sum(r["best"] for r in ours) == 1
    assert all(len(r["samples"]) == 2 for r in rows)
    assert len(lines) == 2 * len(rows) and lines[-1].startswith(f"[{len(lines)}/{len(lines)}]")
    assert all(r["vs_gym_async"] is None and r["vs_gym_sync"] > 0 for r in rows)


def test_preset_suites_keep_the_issue_sizes():
    (jitter,) = SUITES["async"].groups
    assert (jitter.workload, jitter.num_envs, jitter.batch_size, jitter.peer) == ("jitter", 64, 16, "rock_vec")
    assert set(jitter.runners) == {"rock_vec_async", "rock_vec", "gym_async"} and jitter.targets == {
        "rock_vec_async": 1.3}
    assert WORKLOADS["jitter"].kwargs["step_us"] == 105 and WORKLOADS["jitter"].kwargs["jitter_us"] == 95
    (sb3,) = SUITES["sb3"].groups
    assert (sb3.workload, sb3.num_envs, sb3.peer, sb3.targets) == ("cartpole", 16, "sb3_subproc", {"sb3_rock_vec": 8.0})
    assert set(sb3.runners) == {"sb3_rock_vec", "sb3_subproc", "sb3_dummy"}
    a, s = SUITES["envpool"].groups
    assert (a.num_envs, a.batch_size, set(a.runners)) == (64, 16, {"rock_vec_async", "envpool_async"})
    assert (s.num_envs, s.batch_size, set(s.runners)) == (16, None, {"rock_vec", "envpool_sync"})


def test_jitter_workload_steps_take_10_to_200_us():
    env = SyntheticEnv(**WORKLOADS["jitter"].kwargs)
    env.reset(seed=0)
    times = []
    for _ in range(200):
        env.step(0)
        times.append(env.last_step_ns)
    assert 10_000 <= min(times) < 40_000 and 170_000 < max(times) <= 200_000


def test_async_runner_counts_rows_and_leaves_nothing_in_flight():
    envs = make_envs("rock_vec_async", "cartpole", 4, batch_size=2)
    try:
        for seed in (0, 1):  # measured twice on the same envs: the first drained everything
            rate = measure(envs, 0.05, warmup=0.01, seed=seed, runner="rock_vec_async", batch_size=2)
            assert rate > 0
            assert envs._batches.in_flight == 0
    finally:
        envs.close()
    drive_rows = []
    envs = make_envs("rock_vec_async", "cartpole", 4, batch_size=2)
    try:
        drive = start("rock_vec_async", envs, 4, 2)
        drive_rows.append(drive.rows)
        assert drive.actions.shape == (16, 2)
        drive.round(drive.actions[0])
        drive.finish()
        assert envs._batches.in_flight == 0
    finally:
        envs.close()
    assert drive_rows == [2]


@pytest.mark.parametrize("kwargs, match", [
    ({"runner": "rock_vec_async", "num_envs": 4}, "needs a batch_size"),
    ({"runner": "rock_vec_async", "num_envs": 4, "batch_size": 3}, "must divide"),
    ({"runner": "rock_vec", "num_envs": 4, "batch_size": 2}, "async runners only"),
    ({"runner": "gym_sync", "num_envs": 4, "layout": 2}, "layout applies"),
    ({"runner": "envpool_sync", "num_envs": 4, "workload": "atari_like"}, "EnvPool has no version"),
    ({"runner": "nope", "num_envs": 4}, "unknown runner"),
])
def test_make_envs_rejects_cases_a_runner_cannot_run(kwargs, match):
    kwargs = {"workload": "cartpole", **kwargs}
    with pytest.raises(ValueError, match=match):
        make_envs(**kwargs)


def test_unavailable_names_the_missing_module():
    runner = Runner("ghost", "vector", gym_sync_envs, "needs a module nobody has",
                          requires="rock_vec_no_such_module")
    assert unavailable(runner) == "rock_vec_no_such_module is not installed"
    assert unavailable("rock_vec") is None and unavailable("gym_async") is None


def test_envpool_async_is_drained_between_measurements():
    pytest.importorskip("envpool")
    envs = make_envs("envpool_async", "cartpole", 4, batch_size=2)
    try:
        rates = [measure(envs, 0.05, warmup=0.01, seed=s, runner="envpool_async", batch_size=2) for s in (0, 1)]
    finally:
        envs.close()
    assert all(r > 0 for r in rates)


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_each_workload_steps_under_rock_vec(workload):
    wl = WORKLOADS[workload]
    envs = make_envs("rock_vec", workload, 2)
    try:
        obs, _ = envs.reset(seed=0)
        single = gym.make(wl.env_id, **wl.kwargs)
        assert obs.shape == (2, *single.observation_space.shape)
        assert obs.dtype == single.observation_space.dtype
        for _ in range(3):
            obs, rew, term, trunc, _ = envs.step(np.array([1, 0]))
        assert envs.observation_space.contains(obs)
        assert rew.shape == (2,) and not trunc.any()
    finally:
        envs.close()


@pytest.mark.parametrize("runner", ["gym_sync", "gym_async"])
def test_peer_runners_build_the_synthetic_workload(runner):
    envs = make_envs(runner, "atari_like", 2)
    try:
        envs.reset(seed=0)
        obs = envs.step(np.array([0, 3]))[0]
        assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
    finally:
        envs.close()


def test_the_driver_cost_model_keeps_measured_rows_and_extrapolates_the_rest():
    from rock_vec.bench.driver_cost import ENVS_PER_POOL, model

    measured = [{"pools": 1, "driver_us": 700.0, "per_pool_us": 700.0, "steps_per_s": 900.0, "measured": True},
                {"pools": 2, "driver_us": 1300.0, "per_pool_us": 650.0, "steps_per_s": 500.0, "measured": True}]
    rows = model(measured, pools=(1, 4, 16))
    assert [(r["pools"], r["measured"]) for r in rows] == [(1, True), (2, True), (4, False), (16, False)]
    by = {r["pools"]: r for r in rows}
    assert by[4]["driver_us"] == pytest.approx(100 + 600 * 4) and by[16]["driver_us"] == pytest.approx(100 + 600 * 16)
    assert by[2]["most_steps_per_s"] == pytest.approx(1e6 / 1300)
    assert by[4]["env_steps_per_s"] == pytest.approx(1e6 / 2500 * 4 * ENVS_PER_POOL)
    assert model(measured[:1], pools=(2,))[1]["driver_us"] == pytest.approx(1400)  # one point: proportional


def test_the_ray_suite_measures_the_issue_targets():
    suite = SUITES["ray"]
    assert suite.cluster == (2, 3)
    first = suite.groups[0]
    assert (first.workload, first.num_envs, first.batch_size, first.peer) == ("busy1000", 16, 8, "rock_vec")
    assert first.targets == {"ray_rock_vec": 0.9, "ray_rock_vec_async": 0.95}
    assert {(t.runner, t.least, t.over) for t in first.versus} == {
        (ours, 3.0, peer) for ours in ("ray_rock_vec", "ray_rock_vec_async")
        for peer in ("ray_actor_per_env", "pufferlib_ray")}
    assert WORKLOADS["busy1000"].kwargs["step_us"] == 1000
