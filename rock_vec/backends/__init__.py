"""Where a pool's workers run, each backend behind the one ``Backend`` protocol.

- ``forkserver`` (default): workers forked from the learner's fork server, a
  few MiB each, started in milliseconds.
- ``spawn`` (or gymnasium's ``context="spawn"``): each worker a fresh
  interpreter running the worker program, ``python -m rock_vec.worker``.

``backend_for`` picks one from a pool's options.
"""

from __future__ import annotations

from .base import Backend

BACKENDS = ("forkserver", "spawn")


def backend_for(name: str, pool_id: str) -> Backend:
    """The backend ``name`` (see ``PoolOptions.backend_name``) for pool ``pool_id``."""
    if name == "spawn":
        from .spawn import SpawnBackend

        return SpawnBackend(pool_id)
    from .forkserver import ForkServerBackend

    return ForkServerBackend(pool_id)


__all__ = ["BACKENDS", "Backend", "backend_for"]
