"""``rock-vec bench --suite rllib`` runs RLlib's EnvRunner on a rock_vec pool
and on RLlib's default side by side, and reports the ratio and targets."""

import json
import re

import pytest

pytestmark = pytest.mark.ray


def test_the_rllib_suite_measures_both_runners_side_by_side(capsys, tmp_path):
    import ray

    from rock_vec.cli import main as cli

    out_json = tmp_path / "rllib.json"
    try:
        code = cli.main(["bench", "--suite", "rllib", "--repeats", "2", "--seconds", "0.2", "--json", str(out_json)])
    finally:
        ray.shutdown()  # the suite started Ray for its actors
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| ray 2.60.0" in out.splitlines()[0]
    rows = json.loads(out_json.read_text())["results"]
    assert [(r["workload"], r["runner"]) for r in rows] == [
        ("cartpole", "rllib_rock_vec"), ("cartpole", "rllib_rock_vec_direct"), ("cartpole", "rllib_sync"),
        ("busy100", "rllib_rock_vec"), ("busy100", "rllib_sync")]
    for r in rows:
        assert len(r["samples"]) == 2 and all(s > 0 for s in r["samples"])
        if r["runner"] == "rllib_rock_vec":  # the actor's 2 CPUs: it steps half, one worker the rest
            assert (r["learner_envs"], r["num_workers"]) == (8, 1)
            assert r["target"] == {"cartpole": 1.05, "busy100": 1.5}[r["workload"]]
        if r["runner"].startswith("rllib_rock_vec"):
            assert r["vs_peer"] == pytest.approx(r["steps_per_s"] / next(
                p["steps_per_s"] for p in rows if p["workload"] == r["workload"] and p["runner"] == "rllib_sync"))
        if r["runner"] == "rllib_rock_vec_direct":  # a pool sized to the machine, as make_vec sizes it anywhere
            assert r["num_workers"] >= 1 and r["target"] == 1.05
        if r["runner"] == "rllib_sync":
            assert (r["learner_envs"], r["num_workers"]) == (16, None)
    assert re.search(r"cartpole +16 +- +rllib_rock_vec +- +learner 8 \+ 1 worker", out)
