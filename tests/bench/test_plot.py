"""``rock_vec.bench.plot``: what it refuses to draw and how it names a
missing matplotlib. (A chart drawn by ``rock-vec bench --plot``:
tests/cli/test_bench_command.py.)"""

from __future__ import annotations

import sys

import pytest


def test_plot_refuses_nothing_to_draw_and_names_a_missing_matplotlib(monkeypatch, tmp_path):
    from rock_vec.bench import plot

    pytest.importorskip("matplotlib", reason="pip install -e '.[test]'")
    with pytest.raises(ValueError, match="no results to plot"):
        plot.plot([], str(tmp_path / "x.png"), "title")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    rows = [{"workload": "cartpole", "num_envs": 2, "runner": "gym_sync", "steps_per_s": 1000.0}]
    with pytest.raises(RuntimeError, match=r"pip install 'rock-vec\[bench\]'"):
        plot.plot(rows, str(tmp_path / "x.png"), "title")
