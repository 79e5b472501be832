"""Where each worker runs: a plan from the topology, and applying it.

The plan puts workers on whole cores (every SMT sibling of a core to one
worker) of the NUMA node nearest the GPU the learner uses (or the node with
the most usable cores), keeps the learner's own cores free, never puts two
workers on one core while a free core is left (spilling to the nearest
other nodes first), and binds each worker's memory to its node.

A process worker applies its part at start (``apply``: sched_setaffinity,
and set_mempolicy where the kernel allows); a container gets cpuset_cpus,
cpuset_mems and a GPU device request instead.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import platform

from .topology import Core, Gpu, Topology, format_cpulist


@dataclasses.dataclass(frozen=True)
class Placement:
    """A plan: the learner's CPUs, each worker's CPUs and memory nodes, the
    GPU it was made for, and notes on what could not be had."""

    node: int | None  # None: workers confined to CPUs, not placed on a node
    learner_cpus: tuple[int, ...]
    workers: tuple[tuple[int, ...], ...]
    mems: tuple[tuple[int, ...], ...]
    gpu: Gpu | None = None
    notes: tuple[str, ...] = ()

    def manifest(self) -> dict:
        """What travels to the workers in the segment's manifest (plain JSON)."""
        return {"workers": [list(c) for c in self.workers], "mems": [list(m) for m in self.mems]}

    def describe(self) -> str:
        lines = [(f"node {self.node}" if self.node is not None else "confined to cpus") + (f", GPU {self.gpu.index} ({self.gpu.bus_id}"
                                         f"{', ' + self.gpu.uuid if self.gpu.uuid else ''})" if self.gpu else ""),
                 f"learner    cpus {format_cpulist(self.learner_cpus) or '-'}"]
        for w, (cpus, mems) in enumerate(zip(self.workers, self.mems)):
            lines.append(f"worker {w:<3} cpus {format_cpulist(cpus):<12} memory on node {format_cpulist(mems)}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _nearest_nodes(top: Topology, node: int) -> list[int]:
    distances = top.distances.get(node)
    others = [n for n in top.nodes if n != node]
    if distances:
        order = sorted(top.nodes)
        others.sort(key=lambda n: (distances[order.index(n)] if order.index(n) < len(distances) else 99, n))
    return [node, *others]


def plan(top: Topology, workers: int, gpu: int | str | None = None, learner_cores: int = 1,
         strict: bool = False, cpus=None) -> Placement:
    """Places ``workers`` workers and the learner on ``top``.

    Args:
        gpu: the learner's GPU (index, UUID or PCI bus id): its node first.
        learner_cores: whole cores kept for the learner (0: none).
        strict: refuse to put two workers on one core.
        cpus: only these CPUs (each must be usable by this process).

    Raises:
        ValueError: an unknown GPU, no usable CPU, CPUs this process may not
            use, a negative count, or (strict) more workers than free cores.
    """
    if workers < 1 or learner_cores < 0:
        raise ValueError(f"workers must be >= 1 and learner_cores >= 0, got {workers} and {learner_cores}")
    if cpus is not None:
        outside = sorted(set(cpus) - top.allowed)
        if outside:
            raise ValueError(f"cpus {format_cpulist(outside)} are not usable by this process "
                             f"(it may use {format_cpulist(top.allowed) or 'none'})")
        top = dataclasses.replace(top, allowed=frozenset(cpus))
    if not top.allowed:
        raise ValueError("this process may use no CPU of the topology")
    the_gpu = top.gpu(gpu) if gpu is not None else None
    if the_gpu is not None and the_gpu.node in top.nodes:
        node = the_gpu.node
    else:
        node = max(top.nodes, key=lambda n: (len(top.usable_cores(n)), -n))
    notes = []
    if the_gpu is not None and the_gpu.node not in top.nodes:
        notes.append(f"GPU {the_gpu.index}'s NUMA node is unknown: using node {node}")
    cores: list[Core] = [c for n in _nearest_nodes(top, node) for c in top.usable_cores(n)]
    learner = cores[:learner_cores]
    free = cores[learner_cores:]
    if not free:  # a tiny machine: the learner's cores are all there is
        free, learner = cores, learner if len(cores) > 1 else []
        notes.append("no core left beside the learner's: workers share them")
    if workers > len(free):
        if strict:
            raise ValueError(f"{workers} workers with pinning forced, but {len(free)} free core(s) "
                             f"(cpus {format_cpulist(c for k in free for c in k.cpus)}) after the learner's "
                             f"{learner_cores}: give fewer workers or more CPUs")
        notes.append(f"{workers} workers on {len(free)} free core(s): some share a core")
    chosen = [free[w % len(free)] for w in range(workers)]
    spilled = sorted({c.node for c in chosen} - {node})
    if spilled:
        notes.append(f"node {node} has too few free cores: workers also on node(s) {', '.join(map(str, spilled))}")
    return Placement(node, tuple(c for k in learner for c in k.cpus), tuple(k.cpus for k in chosen),
                     tuple((k.node,) for k in chosen), the_gpu, tuple(notes))


def confine(workers: int, cpus) -> Placement:
    """Every worker may run on any of ``cpus``; none is pinned to a core,
    memory goes where the kernel puts it.

    Raises:
        ValueError: CPUs this process may not use.
    """
    allowed = os.sched_getaffinity(0)
    outside = sorted(set(cpus) - allowed)
    if outside:
        raise ValueError(f"cpus {format_cpulist(outside)} are not usable by this process "
                         f"(it may use {format_cpulist(allowed)})")
    ids = tuple(sorted(set(cpus)))
    return Placement(None, (), (ids,) * workers, ((),) * workers)


# ---- applying a plan in a worker process ----

_SET_MEMPOLICY = {"x86_64": 238, "aarch64": 237}
_MPOL_BIND = 2


def apply(cpus, mems) -> str | None:
    """Pins this process to ``cpus`` and binds its new memory to the nodes
    ``mems``; returns why the memory part could not be done, or None."""
    os.sched_setaffinity(0, cpus)
    number = _SET_MEMPOLICY.get(platform.machine())
    if number is None or not mems:
        return None if not mems else f"set_mempolicy: unknown syscall on {platform.machine()}"
    mask = 0
    for n in mems:
        mask |= 1 << n
    libc = ctypes.CDLL(None, use_errno=True)
    nodemask = ctypes.c_ulong(mask)
    if libc.syscall(number, _MPOL_BIND, ctypes.byref(nodemask), ctypes.c_ulong(max(mems) + 2)) != 0:
        return f"set_mempolicy: {os.strerror(ctypes.get_errno())}"
    return None
