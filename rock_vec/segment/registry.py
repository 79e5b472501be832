"""Running pools, listed for ``rock-vec ps`` and ``rock-vec clean``.

A pool writes one small JSON file into a per-user folder when its workers
are up (again when one is replaced) and removes it when it closes: its id,
learner pid, backend, split and every worker's pid, envs and container. A
file whose learner is gone is stale (a learner killed before it could close
the pool): whoever cleans up after that learner drops it (``forget_learner``),
and until then ``ps`` marks it and ``clean`` removes it. The segment itself cannot
be listed: its name is unlinked once every worker holds it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .processes import pid_alive


def folder() -> Path:
    """This user's registry folder (created on first use)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"rock_vec-{os.getuid()}" / "pools"


def path_of(learner_pid: int, pool_id: str) -> Path:
    return folder() / f"{learner_pid}.{pool_id}.json"


def record(entry: dict) -> None:
    """Writes (or rewrites) a pool's entry, atomically; never raises (a
    listing must not stop a pool)."""
    try:
        target = path_of(entry["learner_pid"], entry["pool"])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, target)
    except OSError:
        pass


def forget(learner_pid: int, pool_id: str) -> None:
    try:
        path_of(learner_pid, pool_id).unlink()
    except OSError:
        pass


def forget_learner(learner_pid: int) -> None:
    """Drops the listings of a learner that is gone: whoever cleans up after
    it (its fork server, its workers, a later pool sweeping its segment)
    leaves no stale entry behind for ``rock-vec ps``. A live learner's stay."""
    if pid_alive(learner_pid):
        return
    for path in folder().glob(f"{learner_pid}.*.json") if folder().is_dir() else ():
        try:
            path.unlink()
        except OSError:
            pass


def entries() -> list[dict]:
    """Every listed pool, oldest first, each with ``stale`` (its learner is gone)."""
    out = []
    for path in sorted(folder().glob("*.json")) if folder().is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        entry["stale"] = not pid_alive(int(entry.get("learner_pid", -1)))
        entry["path"] = str(path)
        out.append(entry)
    return sorted(out, key=lambda e: e.get("started", 0))


def remove_stale() -> list[dict]:
    """Removes the entries of pools whose learner is gone; returns them."""
    gone = [e for e in entries() if e["stale"]]
    for e in gone:
        try:
            os.unlink(e["path"])
        except OSError:
            pass
    return gone
