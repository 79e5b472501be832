"""The fork server imports what the learner imports, from where it found it."""

import subprocess
import sys
from pathlib import Path

LEARNER = Path(__file__).with_name("lifetime_learner.py")


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
