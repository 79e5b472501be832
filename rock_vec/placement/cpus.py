"""How many CPUs a pool may count on: its ``cpus`` option where given, else,
inside a Ray actor or task, the CPUs Ray granted it, else those this process
may run on. The engine sizes spinning and the split by it; the benchmarks
size peers' layouts by it; the command line prints it."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def usable_cpus(cpus: int | Sequence[int] | None = None) -> int:
    """The CPUs a pool may use: ``cpus`` (a count, or a list of CPU ids as the
    pool option takes them), else Ray's grant, else this process's affinity."""
    if cpus is not None:
        return cpus if isinstance(cpus, int) else len(cpus)
    mine = len(os.sched_getaffinity(0))
    return min(granted, mine) if (granted := ray_granted_cpus()) else mine


def ray_granted_cpus() -> int | None:
    """The CPUs Ray granted this process's actor or task (at least 1), or
    None outside one (a driver, no Ray). Ray reserves CPUs but pins none: a
    2-CPU actor on a 64-CPU node may run anywhere, yet owns two."""
    ray = sys.modules.get("ray")  # an actor has imported it; a pool elsewhere must not import it
    if ray is None or not ray.is_initialized():
        return None
    try:
        granted = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except AssertionError:  # Ray's answer in a driver: only workers have assigned resources
        return None
    return max(1, round(granted)) if granted else None
