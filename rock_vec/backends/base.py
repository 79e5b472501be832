"""What every backend does, and the pieces they share.

A backend starts a pool's workers and becomes their watchdog: when one ends
it writes the exit code or signal into the worker's slot and, unless it was
asked to close, reports a fault in the segment (``record_exit``), which
wakes a learner waiting in C at once. The pool talks to it through
``Backend`` and nothing else.
"""

from __future__ import annotations

import os
import sys
from typing import Protocol

from .._core import lib
from ..segment import protocol


class Backend(Protocol):
    """How a pool's workers start, are watched and end.

    Attributes:
        name: the ``backend=`` value that selects it.
        unlink_after_spawn: once ``spawn`` returns, every worker holds the
            segment by descriptor, so the learner may unlink its name at
            once (else: after the workers' startup).
        keeps_segment_name: a replacement worker needs the name (a
            container bind-mounts the file by it): the name stays until the
            pool closes, and whoever outlives the learner unlinks it.
    """

    name: str
    unlink_after_spawn: bool
    keeps_segment_name: bool

    def spawn(self, seg, workers: list[int], timeout: float) -> list[int]:
        """Starts worker program instances for slots ``workers`` of ``seg``
        (a first start or a replacement); returns their pids. Does not wait
        for their envs: the pool collects their startup."""

    def release(self, grace: float) -> None:
        """The pool closes: waits up to ``grace`` seconds for every worker to
        exit (they were told to close), then kills the rest and reaps all."""

    def kill(self, workers: list[int]) -> None:
        """Kills these workers now (ones that stopped answering); their ends
        are then reported as any worker's. Never waits for them."""

    def lost(self) -> str | None:
        """Why every worker is gone at once (its server died), or None."""

    def describe(self, worker: int) -> str:
        """What a person needs to find this worker besides its pid (a
        container's name), or ""."""


def record_exit(seg, index: int, status_code: int) -> None:
    """Writes how worker ``index`` ended into its slot; reports a fault if
    it was not asked to close (``status_code`` as Popen.returncode gives it)."""
    slot = seg.slot(index)
    slot.exit_code, slot.exit_signal = max(status_code, 0), max(-status_code, 0)
    closed = status_code == 0 and slot.cmd == protocol.CMD_CLOSE and slot.done_seq == slot.cmd_seq
    slot.state = protocol.WORKER_EXITED if closed else protocol.WORKER_DEAD
    if not closed and not seg.header.closing:
        lib.rv_report_fault(seg.header)


def python_running(module: str) -> list[str]:
    """The command that runs ``module.main()`` in a fresh interpreter like the
    learner's. ``-c`` puts the cwd first on sys.path: it is dropped, so rock_vec
    and the envs' modules come from where the learner found them."""
    return [sys.executable, "-c", f"import sys; sys.path.pop(0); from {module} import main; sys.exit(main())"]


def child_environment() -> dict:
    """The learner's environment, with its sys.path as PYTHONPATH: a child
    imports what the learner can."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
