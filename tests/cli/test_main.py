"""``rock_vec.cli.main``: the parser and the dispatch, what every command
line gets before any command runs (usage errors exit 2, ``--help`` exits 0)."""

from __future__ import annotations

import pytest

from rock_vec.bench.runners import RUNNER_SPECS
from rock_vec.bench.suites import SUITES
from rock_vec.bench.workloads import WORKLOADS
from rock_vec.cli import main as cli


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
def test_bad_command_lines_print_usage_and_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    assert "usage" in capsys.readouterr().err


def test_bench_help_exits_0_and_names_every_suite_runner_and_workload(capsys):
    assert cli.main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--quick" in out
    for name in (*SUITES, *RUNNER_SPECS, *WORKLOADS, "--suite", "--runners", "--batch-size"):
        assert name in out, name
