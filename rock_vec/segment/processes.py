"""Whether a process lives: a segment or a listing whose learner is gone is stale."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (one of another user
    counts). A zombie, exited but not yet reaped by its parent, is gone: a
    learner killed with its parent (a Ray node's raylet) stays one until init
    reaps it, while whoever cleans up after it is already at work."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:  # no /proc to read here: it exists, which is all we know
        return True
