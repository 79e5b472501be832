"""Exception types, and the safe way a worker's exception crosses to the learner.

Gymnasium's own types keep their meaning (a user's ``except`` clauses keep
working): ``AlreadyPendingCallError``, ``NoAsyncCallError``,
``ClosedEnvironmentError`` and ``multiprocessing.TimeoutError``.

A worker reports an exception as plain data (type name, module, args,
message, traceback text) through the codec. The learner rebuilds it with the
env's own type when that type is an exception class already loaded in the
learner (nothing is imported or unpickled), and chains the remote traceback
as its ``__cause__``, so it prints once with both tracebacks.
"""

from __future__ import annotations

import signal
import traceback
from multiprocessing import TimeoutError  # noqa: F401  (gymnasium's timeout type)

from gymnasium.error import AlreadyPendingCallError, ClosedEnvironmentError, NoAsyncCallError  # noqa: F401

from .segment import codec


class RockVecError(RuntimeError):
    """Base of rock_vec's own errors."""


class WorkerError(RockVecError):
    """A worker failed with an exception whose type the learner cannot rebuild."""


class WorkerDiedError(RockVecError):
    """A worker process ended while the learner needed it.

    Attributes:
        worker: the worker's index in the pool.
        pid: its process id (in the learner's pid namespace when known).
        env_ids: the env indices it hosted.
        exit_code: its exit status, or None when a signal ended it.
        signal: the signal number that ended it, or None.
        out_of_memory: True when the kernel's out-of-memory killer ended it.
    """

    def __init__(self, message: str, *, worker: int, pid: int, env_ids: list[int],
                 exit_code: int | None, signal: int | None, out_of_memory: bool = False):
        super().__init__(message)
        self.worker, self.pid, self.env_ids = worker, pid, env_ids
        self.exit_code, self.signal, self.out_of_memory = exit_code, signal, out_of_memory


class SegmentCorruptedError(RockVecError):
    """The shared segment holds what no worker following the protocol could
    have written: a worker (or an env in it) wrote over memory it must not
    touch. The pool is unusable; ``close()`` still ends everything."""


class RemoteTraceback(Exception):
    """Carries a worker's traceback text; chained as ``__cause__``."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip()


def how_it_ended(exit_code: int | None, sig: int | None) -> str:
    """'was killed by SIGKILL (signal 9)' / 'exited with code 3'."""
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"was killed by {name} (signal {sig})"
    return f"exited with code {exit_code}"


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has ended since
    boot (/proc/vmstat), or None where that is not readable."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def death_hint(sig: int | None) -> str:
    """What a signal usually means, for the end of an error message."""
    return {
        signal.SIGKILL: "; if nobody killed it, the kernel's out-of-memory killer may have (see dmesg)",
        signal.SIGSEGV: "; the env or a library it uses crashed",
        signal.SIGBUS: "; the env or a library it uses crashed",
        signal.SIGABRT: "; the env or a library it uses aborted",
    }.get(sig or 0, "")


# ---- worker side ----


def encode_exception(exc: BaseException, context: str) -> dict:
    """Plain-data report of ``exc``; ``context`` says where it happened."""
    try:
        codec.encode(list(exc.args))
        args = list(exc.args)
    except codec.CodecError:
        args = [str(exc)]
    cls = type(exc)
    return {
        "type": cls.__qualname__,
        "module": cls.__module__,
        "args": args,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "context": context,
    }


def report_into(report: dict, buffer) -> int:
    """Encodes an error report into ``buffer``; a report too big for it (a
    deep traceback, huge args) loses the start of its traceback and its args."""
    try:
        return codec.encode_into(report, buffer, 0, what="error report")
    except codec.CodecError:
        room = max(64, len(buffer) // 2 - 512)
        short = dict(report, traceback=report["traceback"][-room:], args=[report["message"][:room // 2]])
        return codec.encode_into(short, buffer, 0, what="error report")


# ---- learner side ----


def _loaded_exception_type(module: object, qualname: object) -> type | None:
    """The exception class ``module.qualname`` if already loaded here, else None
    (the codec's lookup: imports nothing, runs no module __getattr__ or metaclass hook)."""
    cls = codec.loaded_class(module, qualname)
    if cls is not None and issubclass(cls, BaseException):  # BaseException's metaclass is type: no hook
        return cls
    return None


def restore_exception(report: object) -> BaseException:
    """Rebuilds a worker's exception from its report (a decoded codec value)."""
    if not isinstance(report, dict):
        return WorkerError(f"a worker sent a malformed error report: {report!r:.200}")
    context = str(report.get("context", "in a worker"))
    name = f"{report.get('module')}.{report.get('type')}"
    cls = _loaded_exception_type(report.get("module"), report.get("type"))
    exc: BaseException | None = None
    if cls is not None:
        try:
            exc = cls(*report.get("args", []))
        except Exception:
            exc = None
    if exc is None:
        exc = WorkerError(f"{name}: {report.get('message', '')}")
    exc.__cause__ = RemoteTraceback(str(report.get("traceback", "")))
    exc.add_note(f"rock_vec: raised {context}")
    return exc
