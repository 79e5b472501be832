"""``rock-vec topology`` and ``rock-vec plan``: what ``rock_vec.placement``
sees on this machine (NUMA nodes, cores, usable CPUs, GPUs) and where it
would put a pool's workers, printed for a person to read.

Both take the sysfs root as an argument so that tests can point them at a
recorded machine. ``rock_vec.placement`` is imported inside the functions,
like every module a single command needs.
"""

from __future__ import annotations

import sys

from .exits import EXIT_OK, EXIT_USAGE


def topology_command(root: str = "/sys") -> int:
    """Prints the machine as placement reads it under ``root``; returns the exit code."""
    from ..placement import topology
    from ..placement.topology import format_cpulist

    top = topology.read(root)
    print(f"{len(top.nodes)} NUMA node(s), {len(top.cores)} cores, {sum(len(c.cpus) for c in top.cores)} CPUs; "
          f"this process may use cpus {format_cpulist(top.allowed)}")
    for n, cpus in top.nodes.items():
        cores = [c for c in top.cores if c.node == n]
        dist = f"  distances {' '.join(map(str, top.distances[n]))}" if n in top.distances else ""
        print(f"node {n}: cpus {format_cpulist(cpus)}, {len(cores)} cores{dist}")
        smt = [c for c in cores if len(c.cpus) > 1]
        if smt:
            print("  SMT siblings: " + " ".join(format_cpulist(c.cpus) for c in smt[:8])
                  + (" ..." if len(smt) > 8 else ""))
    if not top.gpus:
        print("no NVIDIA GPU (none on the PCI bus)")
    for g in top.gpus:
        name = f" {g.name}" if g.name else ""
        uuid = f" {g.uuid}" if g.uuid else ""
        node = f"node {g.node}" if g.node >= 0 else "node unknown"
        print(f"GPU {g.index}{name}: {g.bus_id}{uuid}, {node}, local cpus {format_cpulist(g.cpus) or '-'}")
    return EXIT_OK


def plan_command(args, root: str = "/sys") -> int:
    """Prints placement='numa''s plan for ``args.workers`` workers; a plan that cannot be made is a usage error."""
    from ..placement import plan as placement
    from ..placement import topology

    gpu = int(args.gpu) if args.gpu is not None and args.gpu.isdigit() else args.gpu
    try:
        cpus = None if args.cpus is None else topology.parse_cpulist(args.cpus)
        result = placement.plan(topology.read(root), args.workers, gpu, args.learner_cores, args.strict, cpus)
    except ValueError as exc:
        print(f"rock-vec plan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.describe())
    return EXIT_OK
