"""The fork server imports what the learner imports, from where it found it."""

import subprocess
import sys
from pathlib import Path

LEARNER = Path(__file__).resolve().parents[1] / "lifetime_learner.py"


def test_a_rock_vec_folder_in_the_working_directory_does_not_shadow_the_installed_one(tmp_path):
    # A user running from a checkout (or any folder with a rock_vec/ in it)
    # after `pip install .`: `python -c` would put that folder first.
    fake = tmp_path / "rock_vec"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong rock_vec was imported')\n")
    out = subprocess.run([sys.executable, str(LEARNER), "threads"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout


def test_spawned_workers_ignore_a_rock_vec_folder_in_the_working_directory_too(tmp_path, monkeypatch):
    import gymnasium as gym

    import rock_vec

    fake = tmp_path / "rock_vec"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong rock_vec was imported')\n")
    monkeypatch.chdir(tmp_path)
    envs = rock_vec.AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2, context="spawn")
    try:
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 4)
    finally:
        envs.close()
