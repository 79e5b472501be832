"""Scripts register envs at their top level; the workers run that top level
too (the learner's main module as ``__mp_main__``, multiprocessing's spawn
rule), so thunks like ``lambda: gym.make("ALE/Pong-v5")`` work under both
launchers, whether the script runs as ``python script.py`` or ``python -m``.

Each test writes a real script and runs it as a learner in a subprocess."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

GUARDED = '''
import json, os, sys
import gymnasium as gym
import numpy as np
import rock_vec
import {module}

with open(os.environ["MARKS"], "a") as f:  # who ran the top level
    f.write(f"{{os.getpid()}}\\n")


def make():
    return gym.make("{env_id}")


if __name__ == "__main__":
    context = sys.argv[1] if sys.argv[1] != "-" else None
    envs = rock_vec.AsyncVectorEnv([make] * 2, context=context)
    obs, _ = envs.reset(seed=0)
    for _ in range(3):
        obs, *_ = envs.step(envs.action_space.sample())
    pids = envs.worker_pids
    envs.close()
    print(json.dumps({{"learner": os.getpid(), "workers": pids, "ok": True}}))
'''

UNGUARDED = '''
import json, os
import gymnasium as gym
import ale_py
import rock_vec

with open(os.environ["MARKS"], "a") as f:
    f.write(f"before {os.getpid()}\\n")
envs = rock_vec.AsyncVectorEnv([lambda: gym.make("ALE/Pong-v5")] * 2)
with open(os.environ["MARKS"], "a") as f:
    f.write(f"after {os.getpid()}\\n")
envs.reset(seed=0)
envs.close()
print(json.dumps({"learner": os.getpid(), "ok": True}))
'''

FAILING_IN_WORKERS = '''
import json, os
import rock_vec

if __name__ == "__mp_main__":
    raise RuntimeError("this top level refuses to run in a worker")

if __name__ == "__main__":
    envs = rock_vec.make_vec("CartPole-v1", 2)
    envs.reset(seed=0)
    envs.close()
    print(json.dumps({"ok": True}))
'''


def run_script(tmp_path, source, *args, as_module=False):
    package = tmp_path / "job"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(textwrap.dedent(source))
    marks = tmp_path / "marks.txt"
    target = ["-m", "job.train"] if as_module else [str(package / "train.py")]
    proc = subprocess.run([sys.executable, *target, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, MARKS=str(marks), PYTHONWARNINGS="default"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result, proc.stderr, marks.read_text().split("\n")[:-1] if marks.exists() else []


CASES = [("ale_py", "ALE/Pong-v5"), ("minigrid", "MiniGrid-DoorKey-5x5-v0")]


@pytest.mark.parametrize("as_module", [False, True], ids=["python script.py", "python -m"])
@pytest.mark.parametrize("context", ["-", "spawn"], ids=["fork server", "spawn"])
@pytest.mark.parametrize("module,env_id", CASES, ids=[c[0] for c in CASES])
def test_envs_a_script_registers_at_its_top_level_exist_in_every_worker(tmp_path, module, env_id, context, as_module):
    pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[test]')")
    result, stderr, marks = run_script(tmp_path, GUARDED.format(module=module, env_id=env_id), context,
                                       as_module=as_module)
    assert result["ok"]
    assert "rock_vec" not in stderr, stderr  # a guarded script gets no notice
    ran = {int(pid) for pid in marks}
    assert result["learner"] in ran
    if context == "spawn":  # each worker ran the top level itself
        assert set(result["workers"]) <= ran
    else:  # the fork server ran it once, before forking the workers
        assert len(marks) == 2 and not set(result["workers"]) & ran


def test_an_unguarded_script_runs_in_workers_only_up_to_the_pool_and_is_told_so(tmp_path):
    pytest.importorskip("ale_py", reason="ale-py is not installed (pip install -e '.[test]')")
    result, stderr, marks = run_script(tmp_path, UNGUARDED)
    assert result["ok"]
    assert stderr.count("creates a pool at its top level (line 9)") == 1, stderr
    assert "RuntimeWarning" in stderr and "if __name__ == " in stderr
    assert f"{tmp_path / 'job' / 'train.py'}:9: RuntimeWarning" in stderr  # told at the user's own line
    before = [m for m in marks if m.startswith("before")]
    after = [m for m in marks if m.startswith("after")]
    assert len(before) == 2 and after == [f"after {result['learner']}"]  # the worker stopped at the pool line


def test_a_main_module_that_fails_in_the_workers_is_reported_and_the_pool_still_works(tmp_path):
    result, stderr, _ = run_script(tmp_path, FAILING_IN_WORKERS, as_module=True)
    assert result["ok"]
    assert stderr.count("could not run your main module job.train as __mp_main__") == 1, stderr
    assert "this top level refuses to run in a worker" in stderr
