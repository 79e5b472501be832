"""How a pool's workers are started, watched and ended.

A launcher starts workers for a segment and becomes their watchdog: when one
ends it writes the exit code or signal into the worker's slot and, unless it
was asked to close, reports a fault in the segment (rv_report_fault), which
wakes a learner waiting in C at once.

- ``ForkServerLauncher`` (default): workers forked from the learner's fork
  server (rock_vec.forkserver): a few MiB each, started in milliseconds.
- ``SpawnLauncher`` (``context="spawn"``): each worker a fresh interpreter
  running the worker program (``rock_vec.worker.main`` with ``--segment PATH
  --index I``, what ``python -m rock_vec.worker`` runs in a container); ~20 MiB and a fraction of a second each. Its
  watchdog is a thread in the learner holding a pidfd per worker; if the
  learner dies, these workers leave on its heartbeat (1.5 s), since nothing
  else outlives it to kill them.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time

from ._core import lib
from .forkserver import ForkServer, child_environment, python_running


def record_exit(seg, index: int, status_code: int) -> None:
    """Writes how worker ``index`` ended into its slot; reports a fault if
    it was not asked to close (``status_code`` as Popen.returncode gives it)."""
    slot = seg.slot(index)
    slot.exit_code, slot.exit_signal = max(status_code, 0), max(-status_code, 0)
    closed = status_code == 0 and slot.cmd == lib.RV_CMD_CLOSE and slot.done_seq == slot.cmd_seq
    slot.state = lib.RV_WORKER_EXITED if closed else lib.RV_WORKER_DEAD
    if not closed and not seg.header.closing:
        lib.rv_report_fault(seg.header)


class ForkServerLauncher:
    """Workers forked from this process's fork server; it reaps and reports."""

    unlink_after_spawn = True  # the server holds the segment by descriptor

    def __init__(self, pool_id: str):
        self.pool_id = pool_id
        self.server = ForkServer.get()

    def spawn(self, seg, workers: list[int], timeout: float) -> list[int]:
        msg = {"op": "spawn", "pool": self.pool_id, "path": seg.path, "workers": workers}
        return self.server.request(msg, "pids", timeout=timeout)["pids"]

    def release(self, grace: float) -> None:
        if self.server.alive():
            self.server.request({"op": "release", "pool": self.pool_id, "grace": grace}, "released", grace + 5)

    def lost(self) -> str | None:
        """Why every worker is gone (the fork server died), or None."""
        if self.server.alive():
            return None
        return (f"the rock_vec fork server (pid {self.server.proc.pid}) {self.server.describe_death()}; "
                "every worker of the pool went with it")


class SpawnLauncher:
    """Each worker a fresh ``python -m rock_vec.worker`` process, watched by a
    thread of the learner."""

    unlink_after_spawn = False  # workers open the segment by name once started

    def __init__(self, pool_id: str):
        self.procs: dict[int, subprocess.Popen] = {}
        self.seg = None
        self._stop_r, self._stop_w = os.pipe()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    def spawn(self, seg, workers: list[int], timeout: float) -> list[int]:
        self.seg = seg
        env = child_environment()
        with self._lock:
            for w in workers:
                proc = subprocess.Popen(
                    [*python_running("rock_vec.worker"), "--segment", seg.path, "--index", str(w)],
                    env=env, stdin=subprocess.DEVNULL)
                self.procs[w] = proc
                seg.slot(w).host_pid = proc.pid
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="rock_vec-spawn-watchdog", daemon=True)
            self._watcher.start()
        else:
            os.write(self._stop_w, b"r")  # re-read the set of workers
        return [self.procs[w].pid for w in workers]

    def _watch(self) -> None:
        fds: dict[int, int] = {}
        while True:
            with self._lock:
                for w, proc in self.procs.items():
                    if w not in fds.values() and proc.returncode is None:
                        fds[os.pidfd_open(proc.pid)] = w
            poller = select.poll()
            poller.register(self._stop_r, select.POLLIN)
            for fd in fds:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll():
                if fd == self._stop_r:
                    if os.read(self._stop_r, 1) == b"q":
                        return
                    continue
                w = fds.pop(fd)
                os.close(fd)
                code = self.procs[w].wait()
                if self.seg is not None and self.seg.header is not None:
                    record_exit(self.seg, w, code)

    def release(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._watcher is not None:
            os.write(self._stop_w, b"q")
            self._watcher.join(timeout=5)
        os.close(self._stop_r)
        os.close(self._stop_w)

    def lost(self) -> str | None:
        return None  # each worker's end is reported on its own


def launcher_for(context: str | None, pool_id: str):
    """The launcher gymnasium's ``context`` argument asks for."""
    if context == "spawn":
        return SpawnLauncher(pool_id)
    return ForkServerLauncher(pool_id)

