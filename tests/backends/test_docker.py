"""The docker backend against a real engine: the same results as processes,
hardened containers, and the lifetimes of processes (a dead, frozen or
out-of-memory container is a named error; nothing outlives the learner).

Needs a running engine (DOCKER_HOST) and the worker image (`rock-vec image
build`); CI provides both and makes these tests mandatory
(ROCK_VEC_REQUIRE_DOCKER=1)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import rock_vec
import sample_envs
from same import assert_lockstep
from sample_envs import SPACES, FailingEnv, ScribbleEnv, SpaceEnv

pytestmark = pytest.mark.docker
LEARNER = Path(__file__).resolve().parents[1] / "lifetime_learner.py"


@pytest.fixture(scope="module")
def engine():
    """The Docker engine and the worker image, or a skip saying how to get them."""
    why = None
    try:
        from rock_vec.backends import docker as backend

        client = backend.client()
        client.images.get(backend.default_image())
    except ImportError as exc:
        why = f"the docker SDK is missing ({exc}): pip install -e '.[test]'"
    except RuntimeError as exc:
        why = str(exc)
    except Exception as exc:  # the image is missing
        why = (f"no worker image {backend.default_image()} ({type(exc).__name__}): build it with "
               "`rock-vec image build` (README.md, 'Workers in containers')")
    if why is not None:
        if os.environ.get("ROCK_VEC_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ROCK_VEC_REQUIRE_DOCKER=1 but {why}")
        pytest.skip(why)
    return client


@pytest.fixture
def by_value():
    """The test envs travel by value: the worker image has gymnasium, not tests/."""
    here = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(sample_envs)
    cloudpickle.register_pickle_by_value(here)
    yield
    cloudpickle.unregister_pickle_by_value(sample_envs)
    cloudpickle.unregister_pickle_by_value(here)


def our_containers(client, pool_label=None):
    filters = {"label": pool_label or "rock_vec.pool"}
    return client.containers.list(all=True, filters=filters, ignore_removed=True)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("obs", ["box_f32", "dict", "nested", "graph_codec"])
def test_a_docker_pool_steps_exactly_as_sync_and_the_process_pool(engine, by_value, obs, mode):
    fn = lambda: SpaceEnv(observation_space=SPACES[obs], max_len=4)  # noqa: E731
    ours = rock_vec.AsyncVectorEnv([fn] * 4, backend="docker", autoreset_mode=mode)
    assert ours.split.learner_envs == 0 and "in a container" in str(ours.split)
    assert_lockstep(ours, SyncVectorEnv([fn] * 4, autoreset_mode=mode), 25, seed=7)


def test_containers_lend_nothing_so_every_copy_true_batch_is_a_copy(engine):
    """A container can write into every generation of the segment's observations:
    what the learner handed over must not be among them (rock_vec.engine.handouts)."""
    envs = rock_vec.make_vec("CartPole-v1", num_envs=2, backend="docker")
    try:
        obs, _ = envs.reset(seed=0)
        nxt = envs.step(np.zeros(2, np.int64))[0]
        handouts = envs._io.obs
        assert len(handouts.generations) == 1
        for batch in (obs, nxt):
            assert not np.shares_memory(batch, handouts.generations[0].arrays[0])
        assert handouts.borrowed == 0 and handouts.copied == 2
    finally:
        envs.close()


def test_make_vec_builds_registered_envs_from_their_id_inside_containers(engine):
    ours = rock_vec.make_vec("CartPole-v1", num_envs=4, backend="docker", num_workers=2)
    assert_lockstep(ours, SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4), 100, seed=3)


def test_containers_are_hardened_labelled_and_share_only_the_segment(engine):
    envs = rock_vec.make_vec("CartPole-v1", num_envs=2, backend="docker", num_workers=2, memory_limit="256m")
    try:
        pool = envs._pool
        containers = our_containers(engine, f"rock_vec.pool={pool.id}")
        assert len(containers) == 2
        for c in containers:
            host = c.attrs["HostConfig"]
            assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
            assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
            assert host["PidsLimit"] > 0 and host["Memory"] == 256 << 20
            assert host["IpcMode"] != "host" and host["PidMode"] != "host" and not host.get("Privileged")
            assert c.attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
            mounts = [(m["Source"], m["Destination"]) for m in c.attrs["Mounts"] if m["Type"] == "bind"]
            assert mounts == [(pool.seg.path, "/rock_vec/segment")] and pool.seg.path.startswith("/dev/shm/")
            labels = c.labels
            assert labels["rock_vec.pool"] == pool.id and labels["rock_vec.learner"] == str(os.getpid())
            assert labels["rock_vec.worker"] in ("0", "1")
    finally:
        envs.close()
    assert our_containers(engine, f"rock_vec.pool={pool.id}") == []


class Intruder(ScribbleEnv):
    """Tries what hostile code in a container would: the network, the
    filesystem, then the segment."""

    def probe(self):
        import socket

        out = {"uid": os.getuid()}
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=1)
            out["network"] = "reached"
        except OSError as exc:
            out["network"] = type(exc).__name__
        for path in ("/etc/rock_vec_was_here", "/opt/rock_vec/site/x", "/rock_vec/other"):
            try:
                with open(path, "w") as f:
                    f.write("x")
                out[path] = "written"
            except OSError as exc:
                out[path] = type(exc).__name__
        with open("/proc/self/status") as f:
            out["caps"] = next(line.split()[1] for line in f if line.startswith("CapEff"))
        return out


def test_a_hostile_env_in_a_container_reaches_nothing_and_crashes_nothing(engine, by_value):
    envs = rock_vec.AsyncVectorEnv([lambda i=i: Intruder(index=i, what="all", hostile=i == 2) for i in range(4)],
                                   backend="docker", num_workers=2)
    pool_id = envs._pool.id
    try:
        envs.reset(seed=0)
        seen = envs.call("probe")
        for out in seen:
            assert out["network"] != "reached" and out["uid"] == os.getuid()
            assert all(out[p] != "written" for p in ("/etc/rock_vec_was_here", "/opt/rock_vec/site/x",
                                                     "/rock_vec/other"))
            assert int(out["caps"], 16) == 0
        with pytest.raises((rock_vec.RockVecError, rock_vec.segment.codec.CodecError)):
            for _ in range(4):
                envs.step(np.zeros(4, np.int64))  # env 2 writes random bytes over the whole segment
    finally:
        started = time.monotonic()
        envs.close(timeout=2)
        assert time.monotonic() - started < 8
    assert our_containers(engine, f"rock_vec.pool={pool_id}") == []


def test_docker_kill_is_a_named_error_within_two_seconds(engine, by_value):
    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv(step_seconds=0.05)] * 4, backend="docker", num_workers=2)
    try:
        envs.reset(seed=0)
        envs.step(np.zeros(4, np.int64))
        name = f"rock_vec-{envs._pool.id}-1"
        envs.step_async(np.zeros(4, np.int64))
        engine.containers.get(name).kill()
        started = time.monotonic()
        with pytest.raises(rock_vec.WorkerDiedError, match=rf"worker 1 \(pid \d+, container {name}, envs 2..3\) "
                                                            r"was killed by SIGKILL") as info:
            envs.step_wait()
        assert time.monotonic() - started < 2.0
        assert info.value.env_ids == [2, 3]
    finally:
        envs.close()


def test_a_paused_container_is_reported_within_two_seconds_of_its_last_heartbeat(engine, by_value):
    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv()] * 2, backend="docker", num_workers=2)
    try:
        envs.reset(seed=0)
        engine.containers.get(f"rock_vec-{envs._pool.id}-0").pause()
        started = time.monotonic()
        with pytest.raises(rock_vec.WorkerDiedError, match="worker 0 .*stopped answering"):
            envs.step(np.zeros(2, np.int64))
        assert time.monotonic() - started < 3.0
    finally:
        envs.close()


def test_restart_replaces_a_killed_container(engine, by_value):
    envs = rock_vec.AsyncVectorEnv([lambda: FailingEnv()] * 4, backend="docker", num_workers=2,
                                   on_worker_failure="restart")
    try:
        envs.reset(seed=0)
        engine.containers.get(f"rock_vec-{envs._pool.id}-1").kill()
        time.sleep(0.3)
        obs, _, _, trunc, info = envs.step(np.zeros(4, np.int64))
        assert trunc.tolist() == [False, False, True, True] and info["worker_restarted"][2:].all()
        obs, *_ = envs.step(np.zeros(4, np.int64))
        assert obs.shape == (4, 2)
    finally:
        envs.close()


def test_a_container_over_its_memory_limit_is_reported_as_out_of_memory(engine, by_value):
    from sample_envs import HungryEnv

    fns = [lambda: HungryEnv(), lambda: HungryEnv(eat_mib=400)]
    envs = rock_vec.AsyncVectorEnv(fns, backend="docker", num_workers=2, memory_limit="128m")
    try:
        envs.reset(seed=0)
        envs.step(np.zeros(2, np.int64))
        with pytest.raises(rock_vec.WorkerDiedError, match="out-of-memory killer") as info:
            envs.step(np.zeros(2, np.int64))
        assert info.value.out_of_memory and info.value.env_ids == [1]
    finally:
        envs.close()


@pytest.mark.parametrize("kill", ["learner", "process_group"])
def test_a_killed_learner_leaves_no_container_and_no_segment_within_five_seconds(engine, kill):
    """Also when its whole process group dies with it, as a shell's job or a
    Ray actor with its children does: the fork server lives apart to clean up."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(LEARNER), "loop", "-", "docker"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    try:
        info = json.loads(proc.stdout.readline())
        label = f"rock_vec.learner={info['learner']}"
        assert len(our_containers(engine, label)) == 2
        if kill == "learner":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        started = time.monotonic()
        while our_containers(engine, label) and time.monotonic() - started < 5:
            time.sleep(0.1)
        assert our_containers(engine, label) == [], "containers outlived their learner by 5 s"
        assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"rock_vec.{info['learner']}.")]
    finally:
        proc.kill()
        proc.wait()


def test_ps_lists_containers_and_clean_removes_those_of_a_dead_learner(engine, capsys):
    import socket

    from rock_vec.cli import main as cli
    from rock_vec.backends import docker as backend

    envs = rock_vec.make_vec("CartPole-v1", num_envs=2, backend="docker", num_workers=2)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stray = engine.containers.run(backend.default_image(), entrypoint=["/bin/sleep", "60"], detach=True,
                                  network_mode="none", labels={"rock_vec.pool": "stray", "rock_vec.worker": "0",
                                                               "rock_vec.learner": str(dead),
                                                               "rock_vec.host": socket.gethostname()})
    try:
        assert cli.main(["ps"]) == 0
        out = capsys.readouterr().out
        assert f"pool {envs._pool.id}" in out and "backend docker" in out
        assert f"container rock_vec-{envs._pool.id}-0" in out and f"container rock_vec-{envs._pool.id}-1" in out
        assert cli.main(["clean"]) == 0
        out = capsys.readouterr().out
        assert f"removed container {stray.name} (learner {dead})" in out
        assert f"rock_vec-{envs._pool.id}" not in out  # a live learner's containers stay
        assert our_containers(engine, "rock_vec.pool=stray") == []
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 4)
    finally:
        envs.close()
        try:
            stray.remove(force=True)
        except Exception:
            pass


def test_the_docker_bench_suite_compares_with_worker_processes_and_times_container_starts(engine, monkeypatch,
                                                                                           capsys):
    from rock_vec.bench import suites as bench
    from rock_vec.cli import main as cli

    monkeypatch.setattr(bench, "STARTUP_SIZES", (2,))
    monkeypatch.setitem(bench.SUITES, "docker", bench.Suite("docker", bench.SUITES["docker"].description, (
        bench.Group("cartpole", 2, ("rock_vec_docker", "rock_vec_workers"), peer="rock_vec_workers",
                    targets={"rock_vec_docker": 0.95}),)))
    assert cli.main(["bench", "--suite", "docker", "--repeats", "1", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "rock_vec_docker" in out and "rock_vec_workers" in out
    import re

    assert re.search(r"cartpole +2 +- +rock_vec_docker +default +2 workers +[\d,]+ +[\d.]+ +>=0\.95 (met|missed)", out)
    assert re.search(r"2 containers ready in \d+\.\d\d s", out)
