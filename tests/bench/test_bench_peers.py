"""``rock-vec bench --peers``: every peer side by side, ratios over each, the
issue's targets; and the progress bar."""

from __future__ import annotations

import json
import re

import pytest

from rock_vec.bench.groups import BEST_LAYOUT, EVERY_PEER, Group, Target
from rock_vec.bench.peers import puffer_layouts, puffer_workers
from rock_vec.bench.runners import OVERSUBSCRIBED
from rock_vec.bench.suites import PEER_RUNNERS, peer_groups, run_groups
from rock_vec.cli import main as cli


def test_peer_groups_hold_every_runner_each_workload_can_run():
    groups = peer_groups(["cartpole", "image_f32"], [4, 16])
    assert [(g.workload, g.num_envs, g.batch_size) for g in groups] == [
        ("cartpole", 4, 2), ("cartpole", 16, 8), ("image_f32", 4, 2), ("image_f32", 16, 8)]
    ours = ("rock_vec", "rock_vec_nocopy", "rock_vec_async", "rock_vec_oversub")
    assert groups[0].runners == ours + ("gym_sync", "gym_async", "sb3_subproc", "sb3_dummy", "envpool_sync",
                                        "envpool_async", "pufferlib")
    assert groups[2].runners == ours + ("gym_sync", "gym_async", "sb3_subproc", "sb3_dummy", "pufferlib")
    assert all(g.peer == "gym_sync" for g in groups)
    assert groups[0].versus == () and groups[2].versus == ()
    assert groups[1].versus == (Target("rock_vec", 1.9, "pufferlib"), Target("rock_vec", 1.0, "envpool_sync"),
                                Target("rock_vec_oversub", 0.8, BEST_LAYOUT))
    assert groups[3].versus == (Target("rock_vec", 2.0, "pufferlib"), Target("rock_vec_nocopy", 2.0, "pufferlib"),
                                Target("rock_vec_oversub", 0.8, BEST_LAYOUT))
    (busy,) = peer_groups(["busy100"], [16])
    assert busy.versus[0] == Target("rock_vec", 1.7, EVERY_PEER)


def test_pufferlib_is_measured_in_its_own_layout_and_in_one_worker(monkeypatch):
    monkeypatch.setattr("rock_vec.placement.cpus.usable_cpus", lambda cpus=None: 4)
    assert puffer_workers(16) == 4 and puffer_workers(6) == 3 and puffer_workers(2) == 2
    assert puffer_layouts(16) == (None, 16)
    monkeypatch.setattr("rock_vec.placement.cpus.usable_cpus", lambda cpus=None: 1)
    assert puffer_workers(16) == 1 and puffer_layouts(16) == (None,)


def test_targets_are_ratios_of_the_measured_medians():
    """A real group: rock_vec, its oversubscribed layout and two peers; every
    ratio and target is recomputed from the medians printed."""
    group = Group("cartpole", 4, ("rock_vec", "rock_vec_oversub", "gym_sync", "sb3_dummy"), peer="gym_sync",
                  versus=(Target("rock_vec", 0.01, "sb3_dummy"), Target("rock_vec", 100.0, EVERY_PEER),
                          Target("rock_vec_oversub", 0.8, BEST_LAYOUT)))
    rows = {r["runner"]: r for r in run_groups([group], repeats=1, seconds=0.1, warmup=0.01)}
    speed = {name: r["steps_per_s"] for name, r in rows.items()}
    mine = rows["rock_vec"]
    assert mine["vs"] == {"gym_sync": speed["rock_vec"] / speed["gym_sync"],
                          "sb3_dummy": speed["rock_vec"] / speed["sb3_dummy"]}
    assert rows["gym_sync"]["vs"] == {"sb3_dummy": speed["gym_sync"] / speed["sb3_dummy"]}
    over_dummy, every = mine["versus"]
    assert over_dummy == {"over": "sb3_dummy", "least": 0.01, "ratio": mine["vs"]["sb3_dummy"], "met": True}
    slowest = min(mine["vs"], key=mine["vs"].get)
    assert every == {"over": f"every peer (least over {slowest})", "least": 100.0, "ratio": mine["vs"][slowest],
                     "met": False}
    (best,) = rows["rock_vec_oversub"]["versus"]
    top = max(speed["rock_vec"], speed["rock_vec_oversub"])
    assert best == {"over": BEST_LAYOUT, "least": 0.8, "ratio": speed["rock_vec_oversub"] / top,
                    "met": speed["rock_vec_oversub"] / top >= 0.8}
    assert rows["rock_vec_oversub"]["num_workers"] == min(4, OVERSUBSCRIBED * len(__import__("os").sched_getaffinity(0)))
    assert rows["rock_vec_oversub"]["learner_envs"] == 0


def test_a_target_over_a_runner_outside_the_group_is_refused():
    group = Group("cartpole", 4, ("rock_vec", "gym_sync"), versus=(Target("rock_vec", 1.0, "pufferlib"),))
    with pytest.raises(ValueError, match="pufferlib is a peer or target of group cartpole x4 but not one of its runners"):
        run_groups([group], repeats=1, seconds=0.1)


def test_peers_command_prints_both_tables_and_the_json(capsys, tmp_path, monkeypatch):
    """End to end on CartPole x4, every peer that installs here (PufferLib
    is skipped with its reason where it is missing)."""
    out = tmp_path / "peers.json"
    code = cli.main(["bench", "--peers", "--workloads", "cartpole", "--envs", "4", "--repeats", "1",
                     "--seconds", "0.05", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(out.read_text())
    ran = {r["runner"] for r in data["results"]}
    missing = set(data["meta"]["skipped"])
    assert ran | missing >= {"rock_vec", "rock_vec_nocopy", "rock_vec_async", "rock_vec_oversub", "gym_sync",
                             "gym_async"}
    assert {"rock_vec", "rock_vec_nocopy", "rock_vec_async", "rock_vec_oversub", "gym_sync", "gym_async"} <= ran
    for name, why in data["meta"]["skipped"].items():
        assert f"note: skipped {name}" in captured.out and why in captured.out
    assert "every peer: vs_peer over gym_sync" in captured.out
    head = next(line for line in captured.out.splitlines() if line.startswith("workload") and "/gym_sync" in line)
    columns = re.split(r"\s{2,}", head.strip())
    assert columns[:4] == ["workload", "envs", "runner", "steps/s"]
    peers = [c[1:] for c in columns[4:]]
    assert peers == [p for p in PEER_RUNNERS if p in ran]
    lines = captured.out.splitlines()
    start = lines.index(head)
    ours = [re.split(r"\s{2,}", line.strip()) for line in lines[start + 2: start + 6]]
    by_runner = {r["runner"]: r for r in data["results"]}
    for cells in ours:
        row = by_runner[cells[2]]
        assert cells[3] == f"{row['steps_per_s']:,.0f}"
        for peer, cell in zip(peers, cells[4:]):
            assert cell == f"{row['steps_per_s'] / by_runner[peer]['steps_per_s']:.2f}"
    assert "target:" not in captured.out  # the targets are the 16-env groups'


def test_peers_takes_workloads_and_envs_but_not_runners(capsys):
    assert cli.main(["bench", "--peers", "--runners", "rock_vec"]) == 2
    err = capsys.readouterr().err
    assert "--runners applies to the gym suite only, not to --peers (which runs every peer)" in err
