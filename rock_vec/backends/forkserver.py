"""The fork server backend (default): starts, reaps and outlives nothing.

The learner never forks itself (it may hold threads: torch, JAX, our own
heartbeat). Instead it starts this small program once, with
``subprocess`` (fork+exec, safe with threads). The server imports numpy and
gymnasium, loads a pool's env constructors once, freezes the GC and forks
workers from that warm state, so each worker costs a few MiB instead of a
fresh interpreter (~4 MiB copy-on-write against ~21 MiB, measured).

The server is also the watchdog of its workers: it holds a pidfd for each
one and for the learner, in one ``poll`` loop.

- A worker that ends is reaped at once; its exit code or signal is written
  into its slot and, if it was not asked to close, a fault is reported in the
  segment, which wakes the learner (rv_report_fault).
- When the learner dies (pidfd readable, or the control socket closes), the
  server SIGKILLs every worker, unlinks any segment name still present and
  exits.
- Workers get SIGKILL if the server dies (PR_SET_PDEATHSIG).

The server runs in its own session and is not the learner's child (it forks
once more at start): whatever kills the learner with its children or its
process group (Ray kills an actor's children, a shell its job) leaves the
server alive to clean up after it.

Control messages (spawn, release) are JSON lines on a socketpair; they are
rare and never on the step path.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

from .._core import lib
from ..segment import registry
from ..worker import main_module
from .base import child_environment, python_running, record_exit

# ---------------------------------------------------------------- server side


class _Pool:
    def __init__(self, path: str):
        from ..segment.mapping import Segment
        from ..worker.hosting import load_env_source

        self.path = path
        self.seg = Segment.attach(path)
        self.fd = self.seg.fd
        self.workers: dict[int, int] = {}  # index -> pid, while alive
        self.release_deadline: float | None = None
        main_module.run(self.seg.manifest.get("main"))  # once per server, before any fork (see main_module)
        try:
            self.source = load_env_source(self.seg)  # imports once, shared by every fork
        except Exception:
            self.source = None  # each worker reports the error itself
        gc.collect()  # then freeze: forked workers never write GC headers of what they share
        gc.freeze()


class Server:
    def __init__(self, sock: socket.socket, learner_fd: int, learner_pid: int):
        self.sock = sock
        self.server_pid = os.getpid()
        self.learner_fd, self.learner_pid = learner_fd, learner_pid
        self.pools: dict[str, _Pool] = {}
        self.containers: dict[str, tuple] = {}  # label of a pool's containers -> (DOCKER_HOST, segment path)
        self.children: dict[int, tuple[str, int, int]] = {}  # pidfd -> (pool, index, pid)
        self.poller = select.poll()
        self.poller.register(self.sock.fileno(), select.POLLIN)
        self.poller.register(self.learner_fd, select.POLLIN)
        self.inbox = b""

    def send(self, msg: dict) -> None:
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def run(self) -> None:
        self.send({"ready": os.getpid()})
        while True:
            deadlines = [p.release_deadline for p in self.pools.values() if p.release_deadline]
            timeout = None if not deadlines else max(0, (min(deadlines) - time.monotonic()) * 1000)
            for fd, _ in self.poller.poll(timeout):
                if fd == self.learner_fd:
                    return self.shutdown()
                if fd == self.sock.fileno():
                    data = self.sock.recv(1 << 16)
                    if not data:
                        return self.shutdown()
                    self.inbox += data
                    while b"\n" in self.inbox:
                        line, self.inbox = self.inbox.split(b"\n", 1)
                        self.handle(json.loads(line))
                elif fd in self.children:
                    self.reap(fd)
            self.enforce_release_deadlines()

    def handle(self, msg: dict) -> None:
        try:
            op = msg["op"]
            if op == "spawn":
                self.send({"pids": self.spawn(msg["pool"], msg.get("path"), msg["workers"])})
            elif op == "release":
                pool = self.pools[msg["pool"]]
                pool.release_deadline = time.monotonic() + msg["grace"]
                self.maybe_released(msg["pool"])
            elif op == "watch_containers":  # the docker backend's pools: removed if the learner dies
                self.containers[msg["label"]] = (msg.get("docker_host"), msg.get("segment"))
                self.send({"watching": msg["label"]})
            elif op == "unwatch_containers":
                self.containers.pop(msg["label"], None)
                self.send({"unwatched": msg["label"]})
            elif op == "kill":  # some workers (msg["workers"]) or all
                pool = self.pools[msg["pool"]]
                for index, pid in pool.workers.items():
                    if msg.get("workers") is None or index in msg["workers"]:
                        _kill(pid)
                self.send({"killed": msg["pool"]})
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # a bad request must not take the server down
            self.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})

    def spawn(self, pool_id: str, path: str | None, indices: list[int]) -> list[int]:
        if pool_id not in self.pools:
            self.pools[pool_id] = _Pool(path)
        pool = self.pools[pool_id]
        pids = []
        for index in indices:
            pid = os.fork()
            if pid == 0:
                self.become_worker(pool, index)  # never returns
            pool.workers[index] = pid
            pidfd = os.pidfd_open(pid)
            self.children[pidfd] = (pool_id, index, pid)
            self.poller.register(pidfd, select.POLLIN)
            pool.seg.slot(index).host_pid = pid
            pids.append(pid)
        return pids

    def become_worker(self, pool: _Pool, index: int) -> None:
        code = 1
        try:
            if lib.rv_die_with_parent(signal.SIGKILL, self.server_pid) != 0:
                os._exit(1)
            for fd in [self.sock.fileno(), self.learner_fd, *self.children]:
                os.close(fd)
            from ..worker.program import run

            code = run(f"/dev/fd/{pool.fd}", index, pool.source)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reap(self, pidfd: int) -> None:
        pool_id, index, pid = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        pool = self.pools.get(pool_id)
        if pool is None:
            return
        pool.workers.pop(index, None)
        record_exit(pool.seg, index, os.waitstatus_to_exitcode(status))
        self.maybe_released(pool_id)

    def maybe_released(self, pool_id: str) -> None:
        pool = self.pools[pool_id]
        if pool.release_deadline is not None and not pool.workers:
            pool.seg.close()
            del self.pools[pool_id]
            self.send({"released": pool_id})

    def enforce_release_deadlines(self) -> None:
        now = time.monotonic()
        for pool in self.pools.values():
            if pool.release_deadline and now >= pool.release_deadline:
                for pid in pool.workers.values():
                    _kill(pid)

    def shutdown(self) -> None:
        """The learner is gone: nothing of its pools may stay behind, not even their listings."""
        for _, _, pid in self.children.values():
            _kill(pid)
        for _, _, pid in self.children.values():
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for pool in self.pools.values():
            if pool.path.startswith("/dev/shm/"):
                try:
                    os.unlink(pool.path)
                except FileNotFoundError:
                    pass
        for _, segment in self.containers.values():  # names first: removing containers takes seconds
            if segment and segment.startswith("/dev/shm/"):
                try:
                    os.unlink(segment)
                except FileNotFoundError:
                    pass
        for label, (docker_host, _) in self.containers.items():
            _remove_containers(label, docker_host)
        registry.forget_learner(self.learner_pid)


def _remove_containers(label: str, docker_host: str | None) -> None:
    """Removes every container labelled ``label``, running, paused or not."""
    try:
        import docker

        engine = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        # sparse: no inspect per container, so one removed meanwhile (auto-remove) cannot fail the listing
        for container in engine.containers.list(all=True, filters={"label": label}, sparse=True):
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - auto-remove got there first
                pass
    except Exception:  # noqa: BLE001 - no engine left to ask: nothing more can be done
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rock_vec.backends.forkserver")
    parser.add_argument("--fd", type=int, required=True, help="control socket inherited from the learner")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the learner's to handle
    import gymnasium  # noqa: F401  - preloaded: every worker inherits it
    import numpy  # noqa: F401

    from ..worker import program as worker  # noqa: F401

    learner_pid = os.getppid()
    learner_fd = os.pidfd_open(learner_pid)  # while the learner is still our parent: no pid reuse race
    if os.fork() > 0:  # detach: the learner reaps this parent at once; the server lives on, not its child
        os._exit(0)
    with socket.socket(fileno=args.fd) as sock:
        Server(sock, learner_fd, learner_pid).run()
    return 0


# ---------------------------------------------------------------- learner side


class ForkServerError(RuntimeError):
    """The fork server could not do what was asked."""


class ForkServer:
    """The learner's handle on its fork server (one per learner process)."""

    _instance: "ForkServer | None" = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> "ForkServer":
        with cls._instance_lock:
            if cls._instance is None or not cls._instance.alive() or cls._instance.owner != os.getpid():
                cls._instance = cls()
            return cls._instance

    def __init__(self, start_timeout: float = 60.0):
        self.owner = os.getpid()
        ours, theirs = socket.socketpair()
        starter = subprocess.Popen(
            [*python_running("rock_vec.backends.forkserver"), "--fd", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=child_environment(), stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.inbox = b""
        self.pid, self.pidfd = starter.pid, None
        try:
            self.pid = self._read(start_timeout, "ready", starter)["ready"]
            self.pidfd = os.pidfd_open(self.pid)
        finally:
            starter.wait()  # it forked the server and exited (or failed to start)
        atexit.register(self.stop)

    def alive(self) -> bool:
        if self.pidfd is None:
            return False
        return not select.select([self.pidfd], [], [], 0)[0]  # readable once the server has exited

    def describe_death(self) -> str:
        # Not our child: its exit status is not ours to read.
        return "running" if self.alive() else "has ended (killed, or crashed)"

    def request(self, msg: dict, reply_key: str, timeout: float) -> dict:
        with self.lock:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
            return self._read(timeout, reply_key)

    def _read(self, timeout: float, key: str, starter: subprocess.Popen | None = None) -> dict:
        deadline = time.monotonic() + timeout
        closed = False
        while True:
            while b"\n" in self.inbox:
                line, self.inbox = self.inbox.split(b"\n", 1)
                reply = json.loads(line)
                if "error" in reply:
                    raise ForkServerError(reply["error"] + "\n" + reply.get("traceback", ""))
                if key in reply:
                    return reply
            remaining = deadline - time.monotonic()
            starting_failed = starter is not None and starter.poll() not in (None, 0)
            if remaining <= 0 or starting_failed or closed or (starter is None and not self.alive()):
                from ..errors import how_it_ended

                if starting_failed:
                    ended = how_it_ended(max(starter.returncode, 0), max(-starter.returncode, 0))
                elif starter is not None and starter.returncode is None:
                    ended = "still starting"
                else:
                    ended = self.describe_death()
                raise ForkServerError(
                    f"the rock_vec fork server (pid {self.pid}) did not answer "
                    f"{key!r} within {timeout:.1f} s ({ended})"
                )
            self.sock.settimeout(min(remaining, 0.1))
            try:
                data = self.sock.recv(1 << 16)
            except (socket.timeout, BlockingIOError):
                continue
            if not data:  # the server closed its end: it is gone, or going
                if starter is not None:
                    starter.wait()
                elif self.pidfd is not None:
                    select.select([self.pidfd], [], [], 5)
                closed = True
                continue
            self.inbox += data

    def stop(self) -> None:
        """Closes the control socket: the server kills what is left and exits."""
        self.sock.close()
        if self.pidfd is None:
            return
        if not select.select([self.pidfd], [], [], 5)[0]:
            _kill(self.pid)
        os.close(self.pidfd)
        self.pidfd = None


class ForkServerBackend:
    """Workers forked from this process's fork server; it reaps and reports."""

    name = "forkserver"
    unlink_after_spawn = True  # the server holds the segment by descriptor
    keeps_segment_name = False

    def __init__(self, pool_id: str):
        self.pool_id = pool_id
        self.server = ForkServer.get()

    def spawn(self, seg, workers: list[int], timeout: float) -> list[int]:
        msg = {"op": "spawn", "pool": self.pool_id, "path": seg.path, "workers": workers}
        return self.server.request(msg, "pids", timeout=timeout)["pids"]

    def release(self, grace: float) -> None:
        if self.server.alive():
            self.server.request({"op": "release", "pool": self.pool_id, "grace": grace}, "released", grace + 5)

    def kill(self, workers: list[int]) -> None:
        if self.server.alive():
            self.server.request({"op": "kill", "pool": self.pool_id, "workers": workers}, "killed", 5)

    def describe(self, worker: int) -> str:
        return ""

    def lost(self) -> str | None:
        """Why every worker is gone (the fork server died), or None."""
        if self.server.alive():
            return None
        return (f"the rock_vec fork server (pid {self.server.pid}) {self.server.describe_death()}; "
                "every worker of the pool went with it")


if __name__ == "__main__":
    sys.exit(main())
