"""Where a pool's workers run, each backend behind the one ``Backend`` protocol.

- ``forkserver`` (default): workers forked from the learner's fork server, a
  few MiB each, started in milliseconds.
- ``spawn`` (or gymnasium's ``context="spawn"``): each worker a fresh
  interpreter running the worker program, ``python -m rock_vec.worker``.
- ``docker``: each worker a hardened container running that same program.

``backend_for`` picks one from a pool's options.
"""

from __future__ import annotations

from .base import Backend


def backend_for(options, pool_id: str, placement=None) -> Backend:
    """The backend a pool's ``PoolOptions`` ask for (``backend_name``);
    ``placement``: the pool's plan, which the docker backend gives its
    containers as cpusets and a GPU (process workers apply it themselves)."""
    if options.backend_name == "spawn":
        from .spawn import SpawnBackend

        return SpawnBackend(pool_id)
    if options.backend_name == "docker":
        from .docker import DockerBackend

        return DockerBackend(pool_id, options.image, options.memory_limit, placement)
    from .forkserver import ForkServerBackend

    return ForkServerBackend(pool_id)


__all__ = ["Backend", "backend_for"]
