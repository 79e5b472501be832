"""Watching a running pool from outside (``rock_vec.observe.monitor``, ``rock-vec top``):
read-only, and the counters are the pool's true counts."""

import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import SyncVectorEnv

import rock_vec
from rock_vec.observe import monitor
from rock_vec.segment import registry


def entry_of(envs):
    (entry,) = [e for e in registry.entries() if e["pool"] == envs._pool.id]
    return entry


def test_counters_match_what_the_pool_did_step_for_step():
    """Env steps per host, episodes per env and each env's last return and
    length, against the same run on SyncVectorEnv."""
    envs = rock_vec.make_vec("CartPole-v1", num_envs=6, learner_envs=2, num_workers=2)
    ref = SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 6)
    watch = monitor.PoolMonitor(entry_of(envs))
    try:
        envs.reset(seed=5)
        ref.reset(seed=5)
        ref.action_space.seed(5)
        episodes, returns, lengths = np.zeros(6, np.uint64), np.zeros(6), np.zeros(6, np.uint64)
        running_return, running_length, ended = np.zeros(6), np.zeros(6, np.uint64), np.zeros(6, bool)
        steps = 300
        for _ in range(steps):
            actions = ref.action_space.sample()
            envs.step(actions)
            _, rew, term, trunc, _ = ref.step(actions)
            running_return = np.where(ended, 0.0, running_return + rew)  # NEXT_STEP: a step after the end resets
            running_length = np.where(ended, 0, running_length + 1).astype(np.uint64)
            ended = term | trunc
            episodes += ended
            returns = np.where(ended, running_return, returns)
            lengths = np.where(ended, running_length, lengths)
        snap = watch.snapshot()
        assert snap.learner_steps == steps * 2
        assert [w.env_steps for w in snap.workers] == [steps * 2, steps * 2]
        assert [w.state for w in snap.workers] == ["ready", "ready"] and [w.restarts for w in snap.workers] == [0, 0]
        assert [w.pid for w in snap.workers] == envs.worker_pids
        assert episodes.sum() > 6  # several episodes per env
        np.testing.assert_array_equal(snap.episodes, episodes)
        np.testing.assert_array_equal(snap.last_return, returns)
        np.testing.assert_array_equal(snap.last_length, lengths)
    finally:
        watch.close()
        envs.close()
        ref.close()


def test_the_monitor_cannot_write_and_the_pool_does_not_notice_it():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, num_workers=2, learner_envs=0)
    try:
        envs.reset(seed=0)
        watch = monitor.PoolMonitor(entry_of(envs))
        with pytest.raises(ValueError, match="read-only"):
            watch.seg.arrays["m.episodes"][0] = 7
        before = watch.snapshot()
        for _ in range(50):
            envs.step(np.zeros(4, np.int64))
        after = watch.snapshot()
        watch.close()
        rates = monitor.rates(before, after)
        assert [r.counters.env_steps - b.env_steps for r, b in zip(rates, before.workers)] == [100, 100]
        assert all(r.steps_per_s > 0 and 0 <= r.wait_share <= 1 and r.step_us > 0 for r in rates)
        envs.step(np.zeros(4, np.int64))  # still a working pool
    finally:
        envs.close()


def test_a_dead_worker_shows_how_it_ended():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, num_workers=2, learner_envs=0,
                             on_worker_failure="restart", max_restarts=1)
    watch = monitor.PoolMonitor(entry_of(envs))
    try:
        envs.reset(seed=0)
        victim = envs.worker_pids[1]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while watch.snapshot().workers[1].state != "dead" and time.monotonic() < deadline:
            time.sleep(0.01)
        dead = watch.snapshot().workers[1]
        assert (dead.state, dead.exit_signal, dead.pid) == ("dead", signal.SIGKILL, victim)
        envs.step(np.zeros(4, np.int64))  # the pool replaces it
        replaced = monitor.PoolMonitor(entry_of(envs))  # the listing names the new worker
        try:
            w = replaced.snapshot().workers[1]
            assert w.restarts == 1 and w.state == "ready" and w.pid != victim
        finally:
            replaced.close()
    finally:
        watch.close()
        envs.close()


def test_a_workers_last_error_is_kept_for_monitors(capsys):
    from functools import partial

    from sample_envs import FailingEnv

    envs = rock_vec.AsyncVectorEnv([partial(FailingEnv, i, fail_index=3, fail_step=2) for i in range(4)],
                                   learner_envs=0, num_workers=2)
    watch = monitor.PoolMonitor(entry_of(envs))
    try:
        envs.reset(seed=0)
        envs.step(np.zeros(4, np.int64))
        with pytest.raises(KeyError, match="boom in env 3"):
            envs.step(np.zeros(4, np.int64))
        first, second = watch.snapshot().workers
        assert (first.errors, first.last_error) == (0, "")
        assert second.errors == 1
        assert second.last_error == "KeyError: 'boom in env 3' (in env 3 during step)"
        assert second.state == "ready"  # the worker goes on
        from rock_vec.cli import main as cli

        assert cli.main(["ps"]) == 0
        out = capsys.readouterr().out
        assert f"pid {second.pid:<8} envs 2..3  ready, 2 steps, 0 restarts, 1 errors\n" in out
        assert "    last error: KeyError: 'boom in env 3' (in env 3 during step)\n" in out
    finally:
        watch.close()
        envs.close()


def test_pool_entry_names_what_is_running():
    with pytest.raises(ValueError, match="no running rock_vec pool matches 'ffff'"):
        monitor.pool_entry("ffff")
    a = rock_vec.make_vec("CartPole-v1", num_envs=2, num_workers=1, learner_envs=0)
    b = rock_vec.make_vec("CartPole-v1", num_envs=2, num_workers=1, learner_envs=0)
    try:
        assert monitor.pool_entry(a._pool.id[:6])["pool"] == a._pool.id
        ours = [e for e in registry.entries() if e["learner_pid"] == os.getpid()]
        if len([e for e in registry.entries() if not e["stale"]]) == len(ours):
            with pytest.raises(ValueError, match=r"2 pools are running: .*; name one"):
                monitor.pool_entry(None)
    finally:
        a.close()
        b.close()


def test_rock_vec_top_shows_a_running_learner_and_leaves_it_alone(tmp_path):
    pytest.importorskip("rich", reason="pip install -e '.[test]' (rock-vec top draws with rich)")
    script = tmp_path / "learner.py"
    script.write_text(
        "import sys, time, numpy as np, rock_vec\n"
        "if __name__ == '__main__':\n"
        "    envs = rock_vec.make_vec('CartPole-v1', num_envs=4, learner_envs=2, num_workers=1)\n"
        "    envs.reset(seed=0)\n"
        "    print('ready', envs._pool.id, flush=True)\n"
        "    end = time.monotonic() + 4\n"
        "    while time.monotonic() < end:\n"
        "        envs.step(envs.action_space.sample())\n"
        "    envs.close()\n"
        "    print('done', flush=True)\n")
    learner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        ready, pool = learner.stdout.readline().split()
        assert ready == "ready"
        top = subprocess.run([sys.executable, "-m", "rock_vec.cli", "top", pool[:8], "--once", "--interval", "0.5"],
                             capture_output=True, text=True, timeout=30)
        assert top.returncode == 0, top.stderr
        out = top.stdout
        assert f"pool {pool}" in out and f"learner {learner.pid}" in out
        assert "w0 " in out and " ready " in out and "learner" in out
        assert "total " in out and "env steps/s" in out and "episodes" in out
        assert learner.stdout.readline().strip() == "done"
        assert learner.wait(timeout=10) == 0
    finally:
        learner.kill()
        learner.wait()


def scrape(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def sample(text, name, **labels):
    """The value of metric ``name`` with exactly ``labels`` in a scrape."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1:line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}} in the scrape")


def test_the_prometheus_endpoint_serves_the_pools_counters_over_http():
    pytest.importorskip("prometheus_client", reason="pip install -e '.[test]' (serve-metrics)")
    from rock_vec.observe import metrics

    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, learner_envs=2, num_workers=1)
    server, thread = metrics.serve(0)
    try:
        envs.reset(seed=0)
        for _ in range(120):
            envs.step(envs.action_space.sample())
        text = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
        pool = envs._pool.id
        assert sample(text, "rock_vec_env_steps_total", pool=pool, host="learner") == 240
        assert sample(text, "rock_vec_env_steps_total", pool=pool, host="worker 0") == 240
        assert sample(text, "rock_vec_worker_ready", pool=pool, host="worker 0", state="ready") == 1
        assert sample(text, "rock_vec_worker_restarts_total", pool=pool, host="worker 0") == 0
        assert sample(text, "rock_vec_envs", pool=pool, backend="forkserver") == 4
        watch = monitor.PoolMonitor(entry_of(envs))
        snap = watch.snapshot()
        watch.close()
        assert sample(text, "rock_vec_episodes_total", pool=pool) == snap.episodes.sum() > 0
        assert sample(text, "rock_vec_stepping_seconds_total", pool=pool, host="worker 0") > 0
    finally:
        server.shutdown()
        envs.close()


def test_rock_vec_serve_metrics_runs_as_a_command(tmp_path):
    pytest.importorskip("prometheus_client", reason="pip install -e '.[test]' (serve-metrics)")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    envs = rock_vec.make_vec("CartPole-v1", num_envs=2, learner_envs=0, num_workers=1)
    server = subprocess.Popen([sys.executable, "-m", "rock_vec.cli", "serve-metrics", "--port", str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == f"serving rock_vec metrics on http://127.0.0.1:{port}/metrics"
        envs.reset(seed=0)
        envs.step(np.zeros(2, np.int64))
        text = scrape(f"http://127.0.0.1:{port}/metrics")
        assert sample(text, "rock_vec_env_steps_total", pool=envs._pool.id, host="worker 0") == 2
    finally:
        server.terminate()
        server.wait(timeout=10)
        envs.close()
