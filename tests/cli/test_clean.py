"""``rock-vec clean`` (``rock_vec.cli.clean``): stale segments and the
listings of pools whose learner is gone, listed by ``--dry-run`` and
removed without it. (Stray containers: tests/backends/test_docker.py.)"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from rock_vec.cli import main as cli
from rock_vec.segment.mapping import NAME_PREFIX, SHM_DIR
from rock_vec.segment.processes import pid_alive


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
