"""A *group*: runners measured side by side on one workload and size
(``Group``), with the ratios it should reach (``Target``); which of its
cases can run here; and its rows, the medians measured and what they say
(``summarise``: ratios over the peers, targets met).

Its own module because what a group asks for and what its rows report is
one contract, read by the suites that measure groups and by the CLI that
prints them, apart from the measuring itself (``suites.run_groups``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .runners import Runner, check_case, import_error, layout_label, layouts_for, runner_named, unavailable
from .workloads import workload_named

#: ``Target.over``: the row's least ratio over each peer (every runner of the group not ours).
EVERY_PEER = "every peer"
#: ``Target.over``: over the fastest of rock_vec's own ``VectorEnv.step`` rows of the group.
BEST_LAYOUT = "the best layout"
#: Every row gets ``vs_<peer>`` for these (None where the peer did not run).
PEERS = ("gym_sync", "gym_async")


@dataclass(frozen=True)
class Target:
    """The least ratio ``runner``'s steps/s should reach over ``over``: a
    runner of the group (its fastest layout), ``EVERY_PEER`` or ``BEST_LAYOUT``."""

    runner: str
    least: float
    over: str


@dataclass(frozen=True)
class Group:
    """Runners measured side by side, interleaved, on one workload and size.

    Attributes:
        workload, num_envs: what every runner vectorises.
        runners: in the order rows are reported.
        batch_size: for the batched (async) runners.
        layouts: rock_vec layouts for runners that take them (see ``layouts_for``).
        peer: each row's ``vs_peer`` is its steps/s over this runner's.
        targets: {runner: the least ``vs_peer`` it should reach}.
        versus: targets over other runners than the peer (``Target``).
        policy: a ``rock_vec.bench.policies`` name: each step runs it first
            (a training loop), the same one for every runner of the group.
    """

    workload: str
    num_envs: int
    runners: tuple[str, ...]
    batch_size: int | None = None
    layouts: tuple[int | None, ...] = (None,)
    peer: str | None = None
    targets: dict = field(default_factory=dict)
    versus: tuple[Target, ...] = ()
    policy: str | None = None

    def label(self) -> str:
        return (f"{self.workload} x{self.num_envs}" + (f" batch {self.batch_size}" if self.batch_size else "")
                + (f" +{self.policy} policy" if self.policy else ""))


def group_unavailable(group: Group) -> str | None:
    """Why ``group`` cannot run here (its env's or its policy's module does
    not import), or None."""
    needs = list(workload_named(group.workload).requires) + (["torch"] if group.policy else [])
    for module in needs:
        why = import_error(module)
        if why:
            return f"{group.label()}: {why}"
    return None


def cases_of(group: Group) -> list[tuple[Runner, int | None]]:
    """(runner, layout) pairs of ``group`` that can run here, peers first
    (gym_async forks the learner: best before rock_vec pools exist)."""
    cases = []
    for name in group.runners:
        spec = runner_named(name)
        if unavailable(spec):
            continue
        if spec.own_layouts is not None:
            layouts = list(spec.own_layouts(group.num_envs))
        else:
            layouts = layouts_for(group.layouts, group.num_envs) if spec.layouts else [None]
        for layout in layouts:
            cases.append((spec, layout))
    return sorted(cases, key=lambda c: c[0].ours)


def check_group(group: Group) -> None:
    workload_named(group.workload)
    for name in group.runners:
        spec = runner_named(name)
        check_case(spec, group.workload, group.num_envs, None, group.batch_size if spec.batched else None)
    overs = [t.over for t in group.versus if t.over not in (EVERY_PEER, BEST_LAYOUT)]
    for name in (group.peer, *group.targets, *(t.runner for t in group.versus), *overs):
        if name is not None and name not in group.runners:
            raise ValueError(f"{name} is a peer or target of group {group.label()} but not one of its runners")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def summarise(group: Group, entries: list[dict]) -> list[dict]:
    """The rows of ``group`` from its measured entries (see ``suites.run_groups``)."""
    rows = []
    for e in sorted(entries, key=lambda e: group.runners.index(e["runner"])):
        rows.append({
            "group": group.label(), "workload": group.workload, "num_envs": group.num_envs, "runner": e["runner"],
            "api": e["spec"].api, "batch_size": e["batch_size"],
            "layout": layout_label(e["layout"]) if e["spec"].layouts else None,
            "num_workers": e["num_workers"], "learner_envs": e["learner_envs"],
            "steps_per_s": statistics.median(e["samples"]), "samples": e["samples"],
        })
    # A runner measured in several layouts counts, as a peer, with its fastest.
    fastest: dict[str, dict] = {}
    for r in rows:
        if r["runner"] not in fastest or r["steps_per_s"] > fastest[r["runner"]]["steps_per_s"]:
            fastest[r["runner"]] = r
    speed = {name: r["steps_per_s"] for name, r in fastest.items()}
    peers = [name for name in speed if not runner_named(name).ours]
    ours_best = max((r["steps_per_s"] for r in rows if r["runner"] in ("rock_vec", "rock_vec_oversub")),
                    default=None)
    for r in rows:
        for p in PEERS:
            r[f"vs_{p}"] = _ratio(r["steps_per_s"], speed.get(p))
        r["vs"] = {p: _ratio(r["steps_per_s"], speed[p]) for p in peers if p != r["runner"]}
        r["peer"] = group.peer
        r["vs_peer"] = _ratio(r["steps_per_s"], speed.get(group.peer)) if group.peer else None
        r["target"] = group.targets.get(r["runner"])
        r["target_met"] = None if r["target"] is None or r["vs_peer"] is None else r["vs_peer"] >= r["target"]
        r["versus"] = [_versus(t, r, speed, ours_best) for t in group.versus if t.runner == r["runner"]]
        if r["layout"] is not None:
            r["best"] = r is fastest[r["runner"]]
    return rows


def _versus(target: Target, row: dict, speed: dict[str, float], ours_best: float | None) -> dict:
    """``target`` checked on ``row``: ``{"over", "least", "ratio", "met"}``
    (ratio and met None where what it is over did not run); over every
    peer, ``over`` names the slowest ratio's peer."""
    over = target.over
    if over == EVERY_PEER:
        ratios = row["vs"]
        over = min(ratios, key=lambda p: ratios[p]) if ratios else EVERY_PEER
        ratio = ratios.get(over)
        over = f"every peer (least over {over})" if ratios else over
    elif over == BEST_LAYOUT:
        ratio = _ratio(row["steps_per_s"], ours_best)
    else:
        ratio = _ratio(row["steps_per_s"], speed.get(over))
    return {"over": over, "least": target.least, "ratio": ratio, "met": None if ratio is None else ratio >= target.least}
