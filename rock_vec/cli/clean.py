"""``rock-vec clean``: removes what dead rock_vec learners left behind:
stale /dev/shm segments (``rock_vec.segment.mapping``), the docker
backend's containers of learners on this host that are gone, and the
listings of their pools (``rock_vec.segment.registry``).

The containers are found by the labels the docker backend gives them
(``rock_vec.backends.docker``'s ``LABEL_*``), through the docker SDK, which
is optional: without it, or without an engine, ``clean`` still removes the
rest and says why containers were not checked. The SDK and rock_vec's
modules are imported inside the functions that use them, so that a missing
SDK is only such a note.
"""

from __future__ import annotations

import socket

from .exits import EXIT_OK


def clean_command(args) -> int:
    """Removes (or with ``--dry-run`` lists) what dead learners left; returns the exit code."""
    from ..backends.docker import LABEL_LEARNER
    from ..segment import registry
    from ..segment.mapping import stale_segments, sweep_stale

    dry = args.dry_run
    listings = [e for e in registry.entries() if e["stale"]]  # before the sweep, which drops its learners' too
    segments = stale_segments() if dry else sweep_stale()
    for path in segments:
        print(f"{'would remove' if dry else 'removed'} {path}")
    containers, why = _stray_containers()
    for c in containers:
        if not dry:
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001 - auto-remove got there first
                pass
        print(f"{'would remove' if dry else 'removed'} container {c.name} (learner {c.labels.get(LABEL_LEARNER)})")
    if not dry:
        registry.remove_stale()
    for e in listings:
        print(f"{'would remove' if dry else 'removed'} listing of pool {e['pool']} (learner {e['learner_pid']})")
    verb = "found (dry run: nothing removed)" if dry else "removed"
    print(f"{len(segments)} stale segment(s), {len(containers)} stray container(s), {len(listings)} stale "
          f"listing(s) {verb}" + (f"; containers not checked: {why}" if why else ""))
    return EXIT_OK


def _stray_containers() -> tuple[list, str | None]:
    """Containers of the docker backend whose learner (on this host) is gone,
    and why none could be looked for (no SDK, no engine), or None."""
    from ..backends.docker import LABEL_HOST, LABEL_LEARNER
    from ..segment.processes import pid_alive

    try:
        import docker

        engine = docker.from_env(timeout=10)
        engine.ping()
    except ImportError:
        return [], "the docker SDK is not installed"
    except Exception as exc:  # noqa: BLE001 - no engine here: nothing of ours can run in it
        return [], f"no Docker engine answers ({type(exc).__name__})"
    host = socket.gethostname()
    stray = []
    for c in engine.containers.list(all=True, filters={"label": LABEL_LEARNER}, ignore_removed=True):
        if c.labels.get(LABEL_HOST) == host and not pid_alive(int(c.labels[LABEL_LEARNER])):
            stray.append(c)
    return stray, None
