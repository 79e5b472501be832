"""``rock-vec ps`` (``rock_vec.cli.ps_top``): a running pool listed with
its learner and workers, and gone once it closes. (``rock-vec top``:
tests/observe/test_monitor.py.)"""

from __future__ import annotations

import os

import rock_vec
from rock_vec.cli import main as cli


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
