"""The machine as placement sees it: NUMA nodes, cores and their SMT
siblings, the CPUs this process may use, and the GPUs with their NUMA node.

Read from sysfs (``root``, "/sys" by default: tests pass recorded trees of
other machines) and, when pynvml is installed and a driver answers, NVML
(each GPU's UUID and name, matched to sysfs by PCI bus id). Without NVML,
NVIDIA GPUs are still found on the PCI bus (vendor 0x10de, display class).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

NVIDIA = "0x10de"


def parse_cpulist(text: str) -> tuple[int, ...]:
    """"0-3,8,10-11" -> (0, 1, 2, 3, 8, 10, 11)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(sorted(set(out)))


def format_cpulist(cpus) -> str:
    """(0, 1, 2, 5) -> "0-2,5"."""
    cpus = sorted(cpus)
    runs, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            runs.append(f"{start}" if start == c else f"{start}-{c}")
            start = None
    return ",".join(runs)


@dataclasses.dataclass(frozen=True)
class Core:
    """A physical core: its NUMA node, package and hardware threads (CPU ids)."""

    node: int
    package: int
    cpus: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Gpu:
    """An NVIDIA GPU: its index (NVML's, else PCI order), PCI bus id, NUMA
    node (-1 unknown), the CPUs local to it, and NVML's UUID and name."""

    index: int
    bus_id: str
    node: int
    cpus: tuple[int, ...]
    uuid: str | None = None
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Topology:
    """Nodes (id -> CPUs), cores (in CPU order), the usable CPUs, the GPUs
    and the distance between nodes (node -> distances in node order)."""

    nodes: dict
    cores: tuple[Core, ...]
    allowed: frozenset
    gpus: tuple[Gpu, ...]
    distances: dict

    def usable_cores(self, node: int | None = None) -> list[Core]:
        """Cores with at least one usable CPU (of ``node``), their CPUs cut to the usable ones."""
        out = []
        for core in self.cores:
            cpus = tuple(c for c in core.cpus if c in self.allowed)
            if cpus and (node is None or core.node == node):
                out.append(dataclasses.replace(core, cpus=cpus))
        return out

    def gpu(self, which: int | str) -> Gpu:
        """The GPU given by index, UUID or PCI bus id.

        Raises:
            ValueError: no such GPU, naming the ones there are.
        """
        for g in self.gpus:
            if which in (g.index, str(g.index), g.uuid, g.bus_id) or (
                    isinstance(which, str) and which.lower() == g.bus_id.lower()):
                return g
        have = ", ".join(f"{g.index} ({g.bus_id}{', ' + g.uuid if g.uuid else ''})" for g in self.gpus) or "none"
        raise ValueError(f"no GPU {which!r} on this machine; GPUs: {have}")


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def read(root: str | os.PathLike = "/sys", allowed=None, nvml: bool = True) -> Topology:
    """The topology under sysfs ``root``. ``allowed``: the usable CPUs
    (default: this process's affinity when root is /sys, else every CPU)."""
    root = Path(root)
    cpu_dir, node_dir = root / "devices/system/cpu", root / "devices/system/node"
    online = parse_cpulist(_read(cpu_dir / "online", "0"))
    nodes: dict[int, tuple[int, ...]] = {}
    for d in sorted(node_dir.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        cpus = tuple(c for c in parse_cpulist(_read(d / "cpulist")) if c in online)
        if cpus:
            nodes[int(d.name[4:])] = cpus
    if not nodes:
        nodes = {0: online}
    node_of = {c: n for n, cpus in nodes.items() for c in cpus}
    distances = {n: tuple(int(x) for x in _read(node_dir / f"node{n}/distance").split())
                 for n in nodes if _read(node_dir / f"node{n}/distance")}
    cores: dict[tuple, list[int]] = {}
    for c in online:
        topo = cpu_dir / f"cpu{c}/topology"
        package = int(_read(topo / "physical_package_id", "0"))
        siblings = parse_cpulist(_read(topo / "thread_siblings_list", str(c)))
        cores.setdefault((package, min(siblings)), []).append(c)
    core_list = tuple(sorted((Core(node_of.get(min(cpus), 0), package, tuple(sorted(cpus)))
                              for (package, _), cpus in cores.items()), key=lambda k: k.cpus[0]))
    if allowed is None:
        allowed = os.sched_getaffinity(0) if root == Path("/sys") else online
    return Topology(nodes, core_list, frozenset(c for c in allowed if c in online), _gpus(root, nvml),
                    distances)


def _gpus(root: Path, use_nvml: bool) -> tuple[Gpu, ...]:
    found = []
    for dev in sorted((root / "bus/pci/devices").glob("*")):
        if _read(dev / "vendor") != NVIDIA or not _read(dev / "class").startswith(("0x0300", "0x0302")):
            continue
        node = int(_read(dev / "numa_node", "-1"))
        found.append(Gpu(len(found), dev.name, node, parse_cpulist(_read(dev / "local_cpulist"))))
    if use_nvml and root == Path("/sys"):
        found = _with_nvml(found)
    return tuple(found)


def _with_nvml(found: list[Gpu]) -> list[Gpu]:
    """NVML's index, UUID and name for each GPU, matched by PCI bus id."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no pynvml, no driver: sysfs is all there is
        return found
    try:
        by_bus = {g.bus_id.lower(): g for g in found}
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            bus = pynvml.nvmlDeviceGetPciInfo(handle).busId
            bus = (bus.decode() if isinstance(bus, bytes) else bus).lower()[-12:]  # 0000:17:00.0
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            known = by_bus.get(bus)
            out.append(Gpu(i, bus, known.node if known else -1, known.cpus if known else (),
                           uuid.decode() if isinstance(uuid, bytes) else uuid,
                           name.decode() if isinstance(name, bytes) else name))
        return out
    finally:
        pynvml.nvmlShutdown()
