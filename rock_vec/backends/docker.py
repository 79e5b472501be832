"""The Docker backend: each worker a hardened container running the worker
program, ``python -m rock_vec.worker``, on the pool's one segment.

The step path is the process backends' own: the container maps the same
segment (the single /dev/shm file bind-mounted in, never the host's IPC
namespace) and waits in the same C calls.

Hardened by default: no network, a read-only root filesystem (a small tmpfs
at /tmp), every capability dropped, no-new-privileges, a pids limit, an
optional memory limit, the learner's uid and gid. Every container carries
labels naming its pool, worker and learner (``rock-vec ps``, ``rock-vec
clean``).

Lifetimes:
- a watchdog thread follows the engine's events for the pool's containers:
  a container that dies has its exit code (or the signal, for codes above
  128) written into its slot and a fault reported, which wakes the learner;
- a frozen container (``docker pause``) stops its worker's heartbeat: the
  pool kills it (``kill``) and reports it;
- if the learner dies, each worker leaves on the learner's stale heartbeat
  (1.5 s) and its container is removed (auto-remove); the learner's fork
  server, which outlives it by design, also removes every container
  labelled with the learner's pid, frozen ones included.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .._version import __version__
from ..placement.topology import format_cpulist
from .base import record_exit
from .forkserver import ForkServer

#: Where the segment appears inside a container.
SEGMENT_IN_CONTAINER = "/rock_vec/segment"
LABEL_POOL, LABEL_WORKER, LABEL_LEARNER = "rock_vec.pool", "rock_vec.worker", "rock_vec.learner"
LABEL_HOST = "rock_vec.host"
PIDS_LIMIT = 512


def client():
    """A Docker client for the engine ``DOCKER_HOST`` names (or the default socket).

    Raises:
        RuntimeError: docker (the SDK) is missing, or no engine answers, saying how to start one.
    """
    try:
        import docker
    except ImportError as exc:
        raise RuntimeError("backend='docker' needs the docker SDK: pip install 'rock-vec[docker]'") from exc
    try:
        engine = docker.from_env(timeout=30)
        engine.ping()
    except Exception as exc:  # noqa: BLE001 - every way of not reaching an engine reads the same to a user
        raise RuntimeError(
            f"backend='docker' found no Docker engine at {os.environ.get('DOCKER_HOST', 'the default socket')} "
            f"({exc}). Start one (e.g. `sudo systemctl start docker`, or README.md's `dockerd` line) and set "
            "DOCKER_HOST if it does not listen on /var/run/docker.sock") from exc
    return engine


def default_image() -> str:
    return f"rock-vec-worker:{__version__}"


class DockerBackend:
    """Each worker a container of ``image``, watched through the engine's events.

    Args:
        pool_id: labels the pool's containers.
        image: the worker image (``rock-vec image build``); None: its default tag.
        memory_limit: e.g. "512m" per container, or None.
    """

    name = "docker"
    unlink_after_spawn = False  # a container opens the segment by its name once started
    keeps_segment_name = True  # a replacement container bind-mounts it by name

    def __init__(self, pool_id: str, image: str | None = None, memory_limit: str | None = None, placement=None):
        self.pool_id, self.image, self.memory_limit = pool_id, image or default_image(), memory_limit
        self.placement = placement
        self.engine = client()
        try:
            self.engine.images.get(self.image)
        except Exception as exc:
            raise RuntimeError(f"the Docker engine has no image {self.image!r}: build it with `rock-vec image build` "
                               f"(see README.md, 'Workers in containers')") from exc
        self.containers: dict[int, object] = {}  # worker index -> container
        self.seg = None
        self._stopping = threading.Event()
        self._events = None
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reaped: set[str] = set()

    # ---- starting ----

    def spawn(self, seg, workers: list[int], timeout: float) -> list[int]:
        if self.seg is None:
            self._watch_learner_death(seg.path)
        self.seg = seg
        if self._watcher is None:  # events from now on: no death can slip between start and watch
            self._events = self.engine.events(decode=True, filters={"label": f"{LABEL_POOL}={self.pool_id}",
                                                                    "type": "container"})
            self._watcher = threading.Thread(target=self._watch, name="rock_vec-docker-watchdog", daemon=True)
            self._watcher.start()
        with ThreadPoolExecutor(max_workers=min(16, len(workers))) as starters:
            return list(starters.map(lambda w: self._start(seg, w), workers))

    def _start(self, seg, index: int) -> int:
        """Starts worker ``index``'s container; returns its pid on the host."""
        labels = {LABEL_POOL: self.pool_id, LABEL_WORKER: str(index), LABEL_LEARNER: str(os.getpid()),
                  LABEL_HOST: socket.gethostname()}
        placed = {}
        if self.placement is not None:
            placed = {"cpuset_cpus": format_cpulist(self.placement.workers[index])}
            if self.placement.mems[index]:  # none when the pool is only confined to CPUs
                placed["cpuset_mems"] = format_cpulist(self.placement.mems[index])
            gpu = self.placement.gpu
            if gpu is not None:
                import docker

                placed["device_requests"] = [docker.types.DeviceRequest(
                    device_ids=[gpu.uuid or str(gpu.index)], capabilities=[["gpu"]])]
        container = self.engine.containers.run(
            self.image, ["--segment", SEGMENT_IN_CONTAINER, "--index", str(index)],
            detach=True, auto_remove=True, labels=labels, name=f"rock_vec-{self.pool_id}-{index}",
            network_mode="none", read_only=True, tmpfs={"/tmp": "size=64m"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=PIDS_LIMIT,
            mem_limit=self.memory_limit, user=f"{os.getuid()}:{os.getgid()}",
            volumes={seg.path: {"bind": SEGMENT_IN_CONTAINER, "mode": "rw"}},
            environment={"PYTHONUNBUFFERED": "1"}, **placed)
        with self._lock:
            self.containers[index] = container
        container.reload()
        pid = int(container.attrs["State"]["Pid"] or -1)
        seg.slot(index).host_pid = pid
        return pid

    # ---- watching ----

    def _watch(self) -> None:
        try:
            for event in self._events:
                if self._stopping.is_set():
                    return
                if event.get("status") != "die":
                    continue
                attrs = event.get("Actor", {}).get("Attributes", {})
                index, cid = attrs.get(LABEL_WORKER), event.get("id", "")
                if index is None or cid in self._reaped:
                    continue
                self._reaped.add(cid)
                code = int(attrs.get("exitCode", "1"))
                status = -(code - 128) if code > 128 else code  # 137: SIGKILL, as Popen.returncode says it
                if self.seg is not None and self.seg.header is not None:
                    record_exit(self.seg, int(index), status)
        except Exception:  # noqa: BLE001 - the stream closes when the pool does
            return

    def _watch_learner_death(self, segment_path: str) -> None:
        """The fork server, which outlives the learner, removes this pool's
        containers and unlinks its segment's name if the learner dies
        without closing it."""
        try:
            ForkServer.get().request({"op": "watch_containers", "label": f"{LABEL_POOL}={self.pool_id}",
                                      "docker_host": os.environ.get("DOCKER_HOST"), "segment": segment_path},
                                     "watching", 30)
        except Exception:  # noqa: BLE001 - the heartbeat exit still ends live containers
            pass

    # ---- ending ----

    def release(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        with self._lock:
            containers = list(self.containers.values())
        for container in containers:
            try:
                container.wait(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - still running after grace, or already gone
                self._remove(container)
        for container in containers:
            self._remove(container)
        for container in containers:  # an auto-remove under way refused ours and ends later
            try:
                container.wait(condition="removed", timeout=5)
            except Exception:  # noqa: BLE001 - already gone (NotFound)
                pass
        self._stopping.set()
        if self._events is not None:
            self._events.close()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        try:
            ForkServer.get().request({"op": "unwatch_containers", "label": f"{LABEL_POOL}={self.pool_id}"},
                                     "unwatched", 5)
        except Exception:  # noqa: BLE001
            pass

    def _remove(self, container) -> None:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - auto-remove got there first (or is under way)
            pass

    def kill(self, workers: list[int]) -> None:
        with self._lock:
            targets = [self.containers[w] for w in workers if w in self.containers]
        for container in targets:
            try:
                container.kill()
            except Exception:  # noqa: BLE001 - paused (the engine refuses to kill it) or already gone
                self._remove(container)

    def lost(self) -> str | None:
        return None  # each container's end is reported on its own

    def describe(self, worker: int) -> str:
        return f"container rock_vec-{self.pool_id}-{worker}"
