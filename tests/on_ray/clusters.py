"""A real Ray cluster of several nodes on this machine (``ray start --head``
and ``ray start --address``), and what the tests ask of the processes on it."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psutil

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # for Ray's workers: sample_envs, same


def ray_command(*args, env):
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    subprocess.run([ray, *args], env=env, check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: int = 2):
    """``nodes`` Ray nodes of ``cpus`` CPUs each, and this process connected
    as the driver; yields {"head": id, "others": [ids]}. Torn down by killing
    every process the cluster started."""
    import ray

    temp = tempfile.mkdtemp(prefix="rv-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, RAY_AUTH_MODE="disabled",
               PYTHONPATH=os.pathsep.join(filter(None, [TESTS, os.path.dirname(__file__), os.environ.get("PYTHONPATH")])))
    try:
        ray_command("start", "--head", f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={temp}", env=env)
        for _ in range(nodes - 1):
            ray_command("start", f"--address=127.0.0.1:{port}", f"--num-cpus={cpus}", "--disable-usage-stats",
                        env=env)
        ray.init(address=f"127.0.0.1:{port}")
        head = ray.get_runtime_context().get_node_id()
        alive_nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        assert len(alive_nodes) == nodes, alive_nodes
        yield {"head": head, "others": [n for n in alive_nodes if n != head]}
    finally:
        ray.shutdown()
        ours = [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])]
        for proc in ours + [c for p in ours for c in descendants(p)]:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def descendants(proc):
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def raylet_of(node_id):
    for proc in psutil.process_iter(["cmdline"]):
        if f"--node_id={node_id}" in (proc.info["cmdline"] or []):
            return proc
    raise AssertionError(f"no raylet for node {node_id}")


def segments_of(pid):
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"rock_vec.{pid}.")]


def mapped_segments(pid):
    """The rock_vec segments process ``pid`` maps (by name, unlinked or not)."""
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[5] for line in f if len(line.split()) > 5 and "/dev/shm/rock_vec." in line}


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def left_after(seconds, check):
    """``check()``'s leftovers once they are gone, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
