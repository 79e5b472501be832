"""The spawn backend: each worker a fresh ``python -m rock_vec.worker``
interpreter (``--segment PATH --index I``), the program a container runs;
~20 MiB and a fraction of a second each.

Its watchdog is a thread of the learner holding a pidfd per worker. If the
learner dies, these workers leave on its heartbeat (1.5 s), since nothing
else outlives it to kill them.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time

from .base import child_environment, python_running, record_exit


class SpawnBackend:
    """Each worker a fresh ``python -m rock_vec.worker`` process, watched by a
    thread of the learner."""

    name = "spawn"
    unlink_after_spawn = False  # workers open the segment by name once started
    keeps_segment_name = False

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
                    [*python_running("rock_vec.worker.program"), "--segment", seg.path, "--index", str(w)],
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

    def kill(self, workers: list[int]) -> None:
        with self._lock:
            for w in workers:
                if w in self.procs and self.procs[w].returncode is None:
                    self.procs[w].kill()

    def describe(self, worker: int) -> str:
        return ""

    def lost(self) -> str | None:
        return None  # each worker's end is reported on its own
