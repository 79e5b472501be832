"""``rock-vec bench`` (``rock_vec.cli.bench_command``, its tables from
``rock_vec.cli.tables``): each suite run through the command, with what it
prints, the JSON it writes, the chart it draws and the notes of what it
skipped."""

from __future__ import annotations

import json
import re

import pytest

from rock_vec.bench.groups import Group, group_unavailable
from rock_vec.bench.runners import RUNNER_SPECS, import_error
from rock_vec.bench.suites import SUITES, Suite
from rock_vec.bench import train_loops
from rock_vec.cli import main as cli


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


# ---------------------------------------------------------------- the gym suite


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


def test_gym_suite_runs_async_runners_beside_the_sync_ones(capsys):
    code = cli.main(["bench", "--workloads", "jitter", "--envs", "4", "--runners", "rock_vec,rock_vec_async",
                     "--batch-size", "2", "--repeats", "1", "--seconds", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = _table(captured.out)
    assert [r["runner"] for r in rows] == ["rock_vec", "rock_vec_async"]
    assert all(_rate(r["steps/s"]) > 0 and r["vs_sync"] == "-" for r in rows)
    assert "rows received for async runners" in captured.out


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


# ---------------------------------------------------------------- the preset suites: async, SB3, EnvPool, train, atari


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
    G = Group
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
        monkeypatch.setitem(SUITES, name, Suite(name, SUITES[name].description, groups))


def _missing(*modules):
    """An ``import_error`` under which ``modules`` are not installed."""
    real = import_error

    def fake(module):
        return f"{module} is not installed" if module in modules else real(module)

    return fake


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


@pytest.mark.parametrize("suite, module, kept", [
    ("envpool", "envpool", ["rock_vec_async", "rock_vec"]),
    ("sb3", "stable_baselines3", []),
])
def test_missing_optional_modules_skip_their_rows_with_a_note(small_suites, monkeypatch, capsys, tmp_path,
                                                              suite, module, kept):
    monkeypatch.setattr("rock_vec.bench.runners.import_error", _missing(module))
    out_json = tmp_path / "skip.json"
    code = cli.main(["bench", "--suite", suite, "--repeats", "1", "--seconds", "0.05", "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    skipped = [r for r in RUNNER_SPECS.values() if r.requires == module]
    assert f"note: skipped {', '.join(r.name for r in skipped)}: {module} is not installed" in captured.out
    (rows,) = _peer_tables(captured.out)
    assert [r["runner"] for r in rows] == kept
    assert all(r["vs_peer"] == "-" for r in rows)
    assert f"skipping {skipped[0].name}: {module} is not installed" in captured.err
    assert set(json.loads(out_json.read_text())["meta"]["skipped"]) == {r.name for r in skipped}


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
    if group_unavailable(SUITES["atari"].groups[0]):
        assert "note: skipped breakout x2" in captured.out
    else:
        (rows,) = _peer_tables(captured.out)
        assert [r["runner"] for r in rows] == ["rock_vec", "gym_sync"] and all(_rate(r["steps/s"]) > 0 for r in rows)
