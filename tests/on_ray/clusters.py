"""A real Ray cluster of several nodes on this machine (``ray start --head``
and ``ray start --address``), and what the tests ask of the processes on it."""

import contextlib
import os
import time

import psutil

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # for Ray's workers: sample_envs, same


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: int = 2):
    """``nodes`` Ray nodes of ``cpus`` CPUs each on this machine, this process
    the driver (``rock_vec.ray.cluster.local_cluster``), their workers
    importing the tests' env modules; yields {"head": id, "others": [ids]}."""
    from rock_vec.ray.cluster import local_cluster as cluster

    with cluster(nodes, cpus, pythonpath=[TESTS, os.path.dirname(__file__)]) as ids:
        yield ids


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
