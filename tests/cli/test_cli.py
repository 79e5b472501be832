"""The ``rock-vec`` command (bench, clean) and the synthetic benchmark envs."""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest

import rock_vec
from rock_vec import synthetic
from rock_vec.bench import suites as bench
from rock_vec.cli import main as cli
from rock_vec.bench import train_loops
from rock_vec.segment.mapping import NAME_PREFIX, SHM_DIR
from rock_vec.segment.processes import pid_alive
from rock_vec.synthetic import SYNTHETIC_ID, SYNTHETIC_MAKE_ID, SyntheticEnv

COLUMNS = ["workload", "envs", "runner", "layout", "envs step in", "steps/s", "vs_sync", "vs_async"]


def _table(out: str) -> list[dict]:
    """The rows of the table ``rock-vec bench`` printed, as dicts by column."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["workload"])
    assert re.split(r"\s{2,}", lines[start].strip()) == COLUMNS
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            continue
        if line.startswith("results written"):
            break
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(COLUMNS), line
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


# ---------------------------------------------------------------- bench


def test_bench_prints_a_table_with_positive_ratios(capsys, tmp_path):
    out_json = tmp_path / "bench.json"
    code = cli.main(["bench", "--workloads", "cartpole", "--envs", "4", "--repeats", "1", "--seconds", "0.1",
                     "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    first = captured.out.splitlines()[0]
    assert "usable CPUs" in first and "gymnasium" in first and "numpy" in first and "python" in first
    rows = _table(captured.out)
    assert [r["runner"] for r in rows] == ["rock_vec", "gym_sync", "gym_async"]
    for r in rows:
        assert r["workload"] == "cartpole" and r["envs"] == "4"
        assert float(r["steps/s"].replace(",", "")) > 0
        for col in ("vs_sync", "vs_async"):
            assert float(r[col]) > 0, r
    assert float(rows[1]["vs_sync"]) == 1.0 and float(rows[2]["vs_async"]) == 1.0
    assert re.fullmatch(r"(learner \d+ \+ )?\d+ workers?", rows[0]["envs step in"]), rows[0]
    assert [r["envs step in"] for r in rows[1:]] == ["learner", "4 workers"]
    assert rows[0]["layout"] == "default"
    # progress went to stderr, one line per measurement
    assert len([line for line in captured.err.splitlines() if "steps/s" in line]) == 3
    data = json.loads(out_json.read_text())
    assert {r["runner"] for r in data["results"]} == {"rock_vec", "gym_sync", "gym_async"}
    assert all(r["steps_per_s"] > 0 and len(r["samples"]) == 1 for r in data["results"])


def test_quick_settings_stay_small():
    quick = bench.quick_settings()
    assert quick["env_counts"] == [16] and quick["layouts"] == [None]
    assert len(quick["workloads"]) * quick["repeats"] * quick["seconds"] * len(bench.RUNNERS) <= 20


def test_layouts_for_caps_at_num_envs_and_drops_repeated_worker_counts():
    assert bench.layouts_for(bench.SWEEP_LAYOUTS, 1) == [None, 1]
    assert bench.layouts_for(bench.SWEEP_LAYOUTS, 4) == [None, 1, 2, 4]
    assert bench.layouts_for(bench.SWEEP_LAYOUTS, 64) == [None, 1, 2, 4, 8, 16, 32]
    assert bench.layouts_for([8, 8, 3], 6) == [3]


def test_run_suite_reports_default_and_best_layout():
    lines = []
    rows = bench.run_suite(["cartpole"], [2], repeats=2, seconds=0.05, layouts=[None, 2],
                           runners=["rock_vec", "gym_sync"], warmup=0.01, progress=lines.append)
    ours = [r for r in rows if r["runner"] == "rock_vec"]
    assert [r["layout"] for r in ours] == ["default", "epw=2"]  # learner 1 + 1 worker, then 1 worker of 2
    assert sum(r["best"] for r in ours) == 1
    assert all(len(r["samples"]) == 2 for r in rows)
    assert len(lines) == 2 * len(rows) and lines[-1].startswith(f"[{len(lines)}/{len(lines)}]")
    assert all(r["vs_gym_async"] is None and r["vs_gym_sync"] > 0 for r in rows)


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["bench", "--envs", "x"],
    ["bench", "--envs", "0"],
    ["bench", "--workloads", "nope"],
    ["bench", "--seconds", "-1"],
    ["bench", "--repeats", "0"],
    ["clean", "--bogus"],
    ["bench", "--suite", "nope"],
    ["bench", "--runners", "nope"],
    ["bench", "--suite", "async", "--envs", "4"],  # fixed groups: gym-suite options do not apply
    ["bench", "--suite", "sb3", "--runners", "sb3_dummy"],
    ["bench", "--workloads", "cartpole", "--envs", "4", "--runners", "rock_vec_async"],  # no --batch-size
    ["bench", "--workloads", "cartpole", "--envs", "4", "--runners", "rock_vec_async", "--batch-size", "3"],
    ["bench", "--workloads", "cartpole", "--envs", "4", "--batch-size", "2"],  # no async runner
    ["bench", "--workloads", "jitter", "--envs", "4", "--runners", "envpool_sync"],  # EnvPool has no jitter
])
def test_usage_errors_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    assert "usage" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert cli.main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--quick" in out
    for name in (*bench.SUITES, *bench.RUNNER_SPECS, *bench.WORKLOADS, "--suite", "--runners", "--batch-size"):
        assert name in out, name


# ---------------------------------------------------------------- async, SB3 and EnvPool runners

PEER_COLUMNS = ["workload", "envs", "batch", "runner", "layout", "envs step in", "steps/s", "vs_peer", "target"]


def _peer_tables(out: str) -> list[list[dict]]:
    """Every vs_peer table ``rock-vec bench --suite ...`` printed, as lists of dicts by column."""
    tables, rows = [], None
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells == PEER_COLUMNS:
            rows = []
            tables.append(rows)
        elif rows is not None and line.strip() and not line.startswith("-"):
            if len(cells) != len(PEER_COLUMNS):
                rows = None  # the table ended (a note, the next suite)
                continue
            rows.append(dict(zip(PEER_COLUMNS, cells)))
    return tables


def _rate(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.fixture
def small_suites(monkeypatch):
    """The preset suites, same runners, peers and targets, on a few envs."""
    G = bench.Group
    small = {
        "async": G("jitter", 4, ("rock_vec_async", "rock_vec", "gym_async"), batch_size=2, peer="rock_vec",
                   targets={"rock_vec_async": 1.3}),
        "sb3": G("cartpole", 2, ("sb3_rock_vec", "sb3_subproc", "sb3_dummy"), peer="sb3_subproc",
                 targets={"sb3_rock_vec": 8.0}),
        "envpool": (G("cartpole", 4, ("rock_vec_async", "envpool_async"), batch_size=2, peer="envpool_async"),
                    G("cartpole", 2, ("rock_vec", "envpool_sync"), peer="envpool_sync")),
        "train": (G("cartpole", 4, ("rock_vec", "gym_sync"), peer="gym_sync", policy="mlp",
                    targets={"rock_vec": 1.0}),
                  G("atari_like", 4, ("rock_vec_overlap", "gym_sync"), batch_size=2, peer="gym_sync",
                    policy="cnn", targets={"rock_vec_overlap": 1.4})),
        "atari": G("breakout", 2, ("rock_vec", "gym_sync"), peer="gym_sync", targets={"rock_vec": 1.8}),
    }
    for name, groups in small.items():
        groups = groups if isinstance(groups, tuple) else (groups,)
        monkeypatch.setitem(bench.SUITES, name, bench.Suite(name, bench.SUITES[name].description, groups))


def _missing(*modules):
    """An ``_import_error`` under which ``modules`` are not installed."""
    real = bench._import_error

    def fake(module):
        return f"{module} is not installed" if module in modules else real(module)

    return fake


def test_preset_suites_keep_the_issue_sizes():
    (jitter,) = bench.SUITES["async"].groups
    assert (jitter.workload, jitter.num_envs, jitter.batch_size, jitter.peer) == ("jitter", 64, 16, "rock_vec")
    assert set(jitter.runners) == {"rock_vec_async", "rock_vec", "gym_async"} and jitter.targets == {
        "rock_vec_async": 1.3}
    assert bench.WORKLOADS["jitter"].kwargs["step_us"] == 105 and bench.WORKLOADS["jitter"].kwargs["jitter_us"] == 95
    (sb3,) = bench.SUITES["sb3"].groups
    assert (sb3.workload, sb3.num_envs, sb3.peer, sb3.targets) == ("cartpole", 16, "sb3_subproc", {"sb3_rock_vec": 8.0})
    assert set(sb3.runners) == {"sb3_rock_vec", "sb3_subproc", "sb3_dummy"}
    a, s = bench.SUITES["envpool"].groups
    assert (a.num_envs, a.batch_size, set(a.runners)) == (64, 16, {"rock_vec_async", "envpool_async"})
    assert (s.num_envs, s.batch_size, set(s.runners)) == (16, None, {"rock_vec", "envpool_sync"})


def test_jitter_workload_steps_take_10_to_200_us():
    env = SyntheticEnv(**bench.WORKLOADS["jitter"].kwargs)
    env.reset(seed=0)
    times = []
    for _ in range(200):
        env.step(0)
        times.append(env.last_step_ns)
    assert 10_000 <= min(times) < 40_000 and 170_000 < max(times) <= 200_000


def test_async_runner_counts_rows_and_leaves_nothing_in_flight():
    envs = bench.make_envs("rock_vec_async", "cartpole", 4, batch_size=2)
    try:
        for seed in (0, 1):  # measured twice on the same envs: the first drained everything
            rate = bench.measure(envs, 0.05, warmup=0.01, seed=seed, runner="rock_vec_async", batch_size=2)
            assert rate > 0
            assert envs._batches.in_flight == 0
    finally:
        envs.close()
    drive_rows = []
    envs = bench.make_envs("rock_vec_async", "cartpole", 4, batch_size=2)
    try:
        drive = bench.start("rock_vec_async", envs, 4, 2)
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
        bench.make_envs(**kwargs)


def test_unavailable_names_the_missing_module():
    runner = bench.Runner("ghost", "vector", bench._gym_sync, "needs a module nobody has",
                          requires="rock_vec_no_such_module")
    assert bench.unavailable(runner) == "rock_vec_no_such_module is not installed"
    assert bench.unavailable("rock_vec") is None and bench.unavailable("gym_async") is None


def test_gym_suite_runs_async_runners_beside_the_sync_ones(capsys):
    code = cli.main(["bench", "--workloads", "jitter", "--envs", "4", "--runners", "rock_vec,rock_vec_async",
                     "--batch-size", "2", "--repeats", "1", "--seconds", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = _table(captured.out)
    assert [r["runner"] for r in rows] == ["rock_vec", "rock_vec_async"]
    assert all(_rate(r["steps/s"]) > 0 and r["vs_sync"] == "-" for r in rows)
    assert "rows received for async runners" in captured.out


def test_async_suite_prints_ratios_to_rock_vec_sync_and_the_target(small_suites, capsys, tmp_path):
    out_json = tmp_path / "async.json"
    code = cli.main(["bench", "--suite", "async", "--repeats", "2", "--seconds", "0.05", "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (rows,) = _peer_tables(captured.out)
    assert [r["runner"] for r in rows] == ["rock_vec_async", "rock_vec", "gym_async"]
    assert [r["batch"] for r in rows] == ["2", "-", "-"]
    assert rows[1]["vs_peer"] == "1.00" and rows[1]["target"] == "-"
    assert re.fullmatch(r">=1\.30 (met|missed)", rows[0]["target"])
    assert all(_rate(r["steps/s"]) > 0 and float(r["vs_peer"]) > 0 for r in rows)
    assert "vs_peer: over rock_vec" in captured.out
    assert len([line for line in captured.err.splitlines() if "steps/s" in line]) == 6
    data = json.loads(out_json.read_text())
    assert data["meta"]["suites"] == ["async"] and data["meta"]["skipped"] == {}
    by_runner = {r["runner"]: r for r in data["results"]}
    ours, peer = by_runner["rock_vec_async"], by_runner["rock_vec"]
    assert ours["api"] == "async" and ours["batch_size"] == 2 and ours["peer"] == "rock_vec"
    assert ours["vs_peer"] == pytest.approx(ours["steps_per_s"] / peer["steps_per_s"])
    assert ours["target_met"] == (ours["vs_peer"] >= 1.3)
    assert all(len(r["samples"]) == 2 and r["suite"] == "async" for r in data["results"])


@pytest.mark.slow
def test_sb3_suite_compares_rock_vec_env_with_subproc_vec_env(small_suites, capsys):
    pytest.importorskip("stable_baselines3")
    code = cli.main(["bench", "--suite", "sb3", "--repeats", "1", "--seconds", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "stable_baselines3 " in captured.out.splitlines()[0]
    (rows,) = _peer_tables(captured.out)
    assert [r["runner"] for r in rows] == ["sb3_rock_vec", "sb3_subproc", "sb3_dummy"]
    assert re.fullmatch(r"(learner \d+ \+ )?\d+ workers?", rows[0]["envs step in"]), rows[0]
    assert [r["envs step in"] for r in rows[1:]] == ["2 workers", "learner"]
    assert rows[1]["vs_peer"] == "1.00" and re.fullmatch(r">=8\.00 (met|missed)", rows[0]["target"])
    assert all(_rate(r["steps/s"]) > 0 for r in rows)


def test_envpool_suite_runs_both_groups(small_suites, capsys):
    pytest.importorskip("envpool")
    code = cli.main(["bench", "--suite", "envpool", "--repeats", "1", "--seconds", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "envpool " in captured.out.splitlines()[0]
    (rows,) = _peer_tables(captured.out)
    assert [(r["runner"], r["envs"], r["batch"]) for r in rows] == [
        ("rock_vec_async", "4", "2"), ("envpool_async", "4", "2"), ("rock_vec", "2", "-"), ("envpool_sync", "2", "-")]
    assert rows[1]["vs_peer"] == rows[3]["vs_peer"] == "1.00"
    assert all(_rate(r["steps/s"]) > 0 for r in rows)


def test_envpool_async_is_drained_between_measurements():
    pytest.importorskip("envpool")
    envs = bench.make_envs("envpool_async", "cartpole", 4, batch_size=2)
    try:
        rates = [bench.measure(envs, 0.05, warmup=0.01, seed=s, runner="envpool_async", batch_size=2) for s in (0, 1)]
    finally:
        envs.close()
    assert all(r > 0 for r in rates)


@pytest.mark.parametrize("suite, module, kept", [
    ("envpool", "envpool", ["rock_vec_async", "rock_vec"]),
    ("sb3", "stable_baselines3", []),
])
def test_missing_optional_modules_skip_their_rows_with_a_note(small_suites, monkeypatch, capsys, tmp_path,
                                                              suite, module, kept):
    monkeypatch.setattr(bench, "_import_error", _missing(module))
    out_json = tmp_path / "skip.json"
    code = cli.main(["bench", "--suite", suite, "--repeats", "1", "--seconds", "0.05", "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    skipped = [r for r in bench.RUNNER_SPECS.values() if r.requires == module]
    assert f"note: skipped {', '.join(r.name for r in skipped)}: {module} is not installed" in captured.out
    (rows,) = _peer_tables(captured.out)
    assert [r["runner"] for r in rows] == kept
    assert all(r["vs_peer"] == "-" for r in rows)
    assert f"skipping {skipped[0].name}: {module} is not installed" in captured.err
    assert set(json.loads(out_json.read_text())["meta"]["skipped"]) == {r.name for r in skipped}


# ---------------------------------------------------------------- clean


def _dead_pid() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        if not pid_alive(pid):
            return pid
    pytest.skip("no free pid")


@pytest.fixture
def fake_stale_segment():
    path = os.path.join(SHM_DIR, f"{NAME_PREFIX}{_dead_pid()}.clitest{secrets.token_hex(4)}")

    def make() -> str:
        with open(path, "wb") as f:
            f.write(b"\0" * 64)
        return path

    yield make
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _attempts(n: int = 5):
    # Any process that creates a pool sweeps stale segments first (Segment.create),
    # so a test run beside ours may remove the fake one between our steps: retry.
    return range(n)


def test_clean_dry_run_lists_a_stale_segment_and_keeps_it(fake_stale_segment, capsys):
    for _ in _attempts():
        path = fake_stale_segment()
        assert cli.main(["clean", "--dry-run"]) == 0
        out = capsys.readouterr().out
        if os.path.exists(path):
            break
    assert f"would remove {path}" in out
    assert os.path.exists(path)


def test_clean_removes_a_stale_segment(fake_stale_segment, capsys):
    for _ in _attempts():
        path = fake_stale_segment()
        assert cli.main(["clean"]) == 0
        out = capsys.readouterr().out
        if f"removed {path}" in out:
            break
    assert f"removed {path}" in out
    assert not os.path.exists(path)
    assert cli.main(["clean", "--dry-run"]) == 0
    assert path not in capsys.readouterr().out


# ---------------------------------------------------------------- synthetic envs


@pytest.mark.parametrize("workload", list(bench.WORKLOADS))
def test_each_workload_steps_under_rock_vec(workload):
    wl = bench.WORKLOADS[workload]
    envs = bench.make_envs("rock_vec", workload, 2)
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
    envs = bench.make_envs(runner, "atari_like", 2)
    try:
        envs.reset(seed=0)
        obs = envs.step(np.array([0, 3]))[0]
        assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
    finally:
        envs.close()


def test_make_vec_builds_synthetic_envs_from_the_module_id():
    envs = rock_vec.make_vec(SYNTHETIC_MAKE_ID, 2, obs_shape=(4, 4), obs_dtype="uint8", step_us=1)
    try:
        envs.reset(seed=0)
        assert envs.step(np.array([0, 1]))[0].shape == (2, 4, 4)
    finally:
        envs.close()


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(synthetic)
        synthetic.register_envs()
    assert gym.spec(SYNTHETIC_ID).entry_point == "rock_vec.synthetic:SyntheticEnv"
    env = gym.make(SYNTHETIC_MAKE_ID, obs_shape=[2, 3])  # JSON turns tuples into lists
    assert env.observation_space.shape == (2, 3)


def _step_times(seed: int, n: int = 20) -> list[int]:
    env = SyntheticEnv(step_us=30, jitter_us=20)
    env.reset(seed=seed)
    times = []
    for _ in range(n):
        env.step(0)
        times.append(env.last_step_ns)
    return times


def test_jitter_is_seeded():
    a, b, c = _step_times(7), _step_times(7), _step_times(8)
    assert a == b and a != c
    assert all(10_000 <= t <= 50_000 for t in a)
    assert len(set(a)) > 1
    assert _step_times(7)[:3] == a[:3]


def test_step_cost_is_busy_cpu():
    env = SyntheticEnv(step_us=2000)
    env.reset(seed=0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(20):
        env.step(0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert wall >= 0.04
    assert cpu >= 0.5 * wall  # a sleep would use no CPU (loose: the machine is shared)


def test_episodes_truncate_and_observations_change_in_reused_buffers():
    env = SyntheticEnv(obs_shape=(84, 84, 4), obs_dtype="uint8", episode_len=5)
    obs0, _ = env.reset(seed=0)
    first = obs0.copy()
    results = [env.step(i % 4) for i in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]
    assert not any(r[2] for r in results)
    assert not np.array_equal(results[0][0], first)
    assert results[0][0] is not results[1][0] and results[0][0] is results[2][0]  # two buffers, no allocation
    assert all(env.observation_space.contains(r[0]) for r in results)
    env = SyntheticEnv(copy_obs=True)
    a, b, c = env.reset(seed=0)[0], env.step(0)[0], env.step(0)[0]
    assert not np.shares_memory(a, c) and not np.shares_memory(a, b)


def test_float_observations_stay_in_bounds():
    env = SyntheticEnv(obs_shape=(3, 8, 8), obs_dtype="float32")
    env.reset(seed=0)
    for _ in range(300):
        obs = env.step(0)[0]
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("kwargs", [
    {"obs_dtype": "int16"}, {"obs_shape": ()}, {"obs_shape": (0, 3)}, {"step_us": -1}, {"jitter_us": -1},
    {"episode_len": 0},
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        SyntheticEnv(**kwargs)


def test_train_suite_runs_policy_loops_and_checks_results_are_the_same(small_suites, capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(train_loops, "GAPS_US", (0, 300))
    monkeypatch.setattr(train_loops, "SWEEP_ENVS", (4,))
    monkeypatch.setitem(train_loops.STEP_TARGETS, 4, 1.0)
    code = cli.main(["bench", "--suite", "train", "--repeats", "1", "--seconds", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (rows,) = _peer_tables(captured.out)
    mlp, cnn = rows[:2], rows[2:]
    assert [r["runner"] for r in mlp] == ["rock_vec", "gym_sync"] and re.fullmatch(r">=1\.00 (met|missed)",
                                                                                     mlp[0]["target"])
    assert [r["runner"] for r in cnn] == ["rock_vec_overlap", "gym_sync"] and cnn[0]["batch"] == "2"
    assert cnn[0]["envs step in"] == "2 workers"  # the halves keep the learner free for the policy
    assert "cartpole x4 +mlp policy: same observations, rewards and flags as gym_sync over 200 steps: yes" \
        in captured.out
    # The loops with a learner between steps: a row per kind and gap, targets judged, PPO at both thread counts.
    sweep = [line.split() for line in captured.out.splitlines() if re.match(r"\s*(busy|mlp)\s+\d+\s+\d+ \|", line)]
    assert [(k, int(n), int(t)) for k, n, t, *_ in sweep] == [("busy", 4, 0), ("busy", 4, 300), ("mlp", 4, 0),
                                                              ("mlp", 4, 300)]
    assert all(re.search(r"<=1\.00 (met|MISSED)", " ".join(row)) for row in sweep)
    assert all(re.search(r">=1\.00 (met|MISSED)", " ".join(row)) for row in sweep if row[0] == "mlp")
    ppo = [line for line in captured.out.splitlines() if re.match(r"\s*\d+( \(default\))? \|", line)]
    assert len(ppo) == 2 and "(default)" in ppo[0] and ppo[1].split()[0] == "1"
    assert all(line.endswith("| yes (16 minibatches)") for line in ppo)  # bit-identical losses


def test_atari_suite_runs_the_breakout_pipeline_or_says_what_is_missing(small_suites, capsys):
    code = cli.main(["bench", "--suite", "atari", "--repeats", "1", "--seconds", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    if bench.group_unavailable(bench.SUITES["atari"].groups[0]):
        assert "note: skipped breakout x2" in captured.out
    else:
        (rows,) = _peer_tables(captured.out)
        assert [r["runner"] for r in rows] == ["rock_vec", "gym_sync"] and all(_rate(r["steps/s"]) > 0 for r in rows)


def test_policies_act_on_a_batch_and_time_their_forward():
    pytest.importorskip("torch")
    from rock_vec.bench import policies

    mlp = policies.make("mlp", (4,), 2, seed=1)
    actions = mlp(np.zeros((8, 4), np.float32))
    assert actions.shape == (8,) and actions.dtype == np.int64 and set(actions.tolist()) <= {0, 1}
    cnn = policies.make("cnn", (84, 84, 4), 6)
    actions = cnn(np.zeros((3, 84, 84, 4), np.uint8))
    assert actions.shape == (3,) and 0 <= actions.min() and actions.max() < 6
    assert cnn.forward_ms > 0 and policies.make("cnn", (4, 84, 84), 4)(np.zeros((2, 4, 84, 84), np.uint8)).shape == (2,)
    with pytest.raises(ValueError, match="unknown policy 'rnn'"):
        policies.make("rnn", (4,), 2)


# ---------------------------------------------------------------- ps, clean of listings


def test_ps_lists_a_running_pool_with_its_workers_and_forgets_it_once_closed(capsys):
    envs = rock_vec.make_vec("CartPole-v1", num_envs=5, learner_envs=1, num_workers=2)
    try:
        assert cli.main(["ps"]) == 0
        out = capsys.readouterr().out
        pool = envs._pool
        assert f"pool {pool.id}  learner {os.getpid()}  backend forkserver  5 envs  up" in out
        assert f"  learner    pid {os.getpid():<8} envs 0..0" in out
        for w, pid in enumerate(envs.worker_pids):
            lo, hi = pool.ranges[w]
            assert f"  worker {w:<3} pid {pid:<8} envs {lo}..{hi - 1}" in out
    finally:
        envs.close()
    cli.main(["ps"])
    assert pool.id not in capsys.readouterr().out


def test_clean_removes_the_listing_of_a_pool_whose_learner_is_gone(capsys):
    from rock_vec.segment import registry

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    entry = {"pool": "deadbeefdeadbeef", "learner_pid": int(dead), "backend": "forkserver", "num_envs": 2,
             "split": "2 workers x 1 env", "learner_envs": [0, 0], "started": 0,
             "workers": [{"index": 0, "pid": int(dead), "envs": [0, 1], "where": ""}]}
    registry.record(entry)
    assert cli.main(["ps"]) == 0
    out = capsys.readouterr().out
    assert "pool deadbeefdeadbeef" in out and "STALE (learner gone; rock-vec clean removes it)" in out
    assert cli.main(["clean", "--dry-run"]) == 0
    assert "would remove listing of pool deadbeefdeadbeef" in capsys.readouterr().out
    assert registry.path_of(int(dead), "deadbeefdeadbeef").exists()
    assert cli.main(["clean"]) == 0
    assert "removed listing of pool deadbeefdeadbeef" in capsys.readouterr().out
    assert not registry.path_of(int(dead), "deadbeefdeadbeef").exists()


def test_bench_draws_its_results_as_a_png_chart(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="pip install -e '.[test]' (matplotlib draws --plot)")
    chart = tmp_path / "bench.png"
    code = cli.main(["bench", "--workloads", "cartpole,atari_like", "--envs", "2,4", "--runners", "rock_vec,gym_sync",
                     "--repeats", "1", "--seconds", "0.05", "--plot", str(chart)])
    out = capsys.readouterr().out
    assert code == 0 and f"chart written to {chart}" in out
    png = chart.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > height > 400  # two workload panels side by side


def test_plot_refuses_nothing_to_draw_and_names_a_missing_matplotlib(monkeypatch, tmp_path):
    from rock_vec.bench import plot

    pytest.importorskip("matplotlib", reason="pip install -e '.[test]'")
    with pytest.raises(ValueError, match="no results to plot"):
        plot.plot([], str(tmp_path / "x.png"), "title")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    rows = [{"workload": "cartpole", "num_envs": 2, "runner": "gym_sync", "steps_per_s": 1000.0}]
    with pytest.raises(RuntimeError, match=r"pip install 'rock-vec\[bench\]'"):
        plot.plot(rows, str(tmp_path / "x.png"), "title")
