"""A Ray cluster of several nodes on this one machine, for benchmarks and
tests of ``rock_vec.ray`` (``rock-vec bench --suite ray``, ``tests/on_ray``).

Every node is a real ``ray start`` (a head, then ``--address`` for each
other): its own raylet, object store and worker processes, as on a cluster
of machines, so pools on different nodes share nothing but what Ray carries.
All of it binds this machine's own addresses; nothing leaves it. Torn down by
killing every process the cluster started (each one's command line names
the cluster's temp dir), so a failed start leaves nothing either.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence

#: Seconds one ``ray start`` may take.
START_S = 120


def _ray(*args: str, env: dict) -> None:
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    subprocess.run([ray, *args], env=env, check=True, capture_output=True, timeout=START_S)


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: int = 1, pythonpath: Sequence[str] = ()) -> Iterator[dict]:
    """``nodes`` Ray nodes of ``cpus`` logical CPUs each, this process
    connected as the driver; yields ``{"head": node id, "others": [node ids]}``.

    ``pythonpath``: folders the nodes' workers import from, before this
    process's ``PYTHONPATH`` (a test's env modules).

    Raises:
        RuntimeError: Ray is missing, or a node did not come up.
    """
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("a local Ray cluster needs Ray: pip install 'rock-vec[ray]'") from exc
    temp = tempfile.mkdtemp(prefix="rv-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, RAY_AUTH_MODE="disabled",  # one machine's nodes: Ray 2.60 wants a token otherwise
               PYTHONPATH=os.pathsep.join(filter(None, [*pythonpath, os.environ.get("PYTHONPATH")])))
    try:
        _ray("start", "--head", f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={temp}", env=env)
        for _ in range(nodes - 1):
            _ray("start", f"--address=127.0.0.1:{port}", f"--num-cpus={cpus}", "--disable-usage-stats", env=env)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=f"127.0.0.1:{port}", logging_level="ERROR", log_to_driver=False)
        head = ray.get_runtime_context().get_node_id()
        alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        if len(alive) != nodes:
            raise RuntimeError(f"a local Ray cluster of {nodes} nodes came up with {len(alive)}")
        yield {"head": head, "others": [n for n in alive if n != head]}
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"`ray start` failed: {exc.stderr.decode(errors='replace')[-2000:]}") from exc
    finally:
        ray.shutdown()
        _kill_every_process_naming(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _kill_every_process_naming(text: str) -> None:
    """SIGKILLs every process whose command line holds ``text``, and their children."""
    ours = set()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    ours.add(int(entry))
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    grown = True
    while grown:  # their children, and theirs (Ray's workers run other command lines)
        more = {pid for pid, parent in parents.items() if parent in ours} - ours
        grown = bool(more)
        ours |= more
    for pid in ours - {os.getpid()}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
