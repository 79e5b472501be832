"""How ``rock-vec bench`` shows its results and its progress: the aligned
text tables (the gym suite's, the preset suites' and ``--peers``' ratio
over each peer), the cells they share (ratios, targets, layouts, where the
envs step), and the progress line or bar on stderr.

Kept apart from the command's orchestration (``bench_command``) because it
only turns result rows into text: what is printed can be read, and tested,
without running a benchmark.
"""

from __future__ import annotations

import re
import shutil
import sys
from typing import Sequence


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fmt_target(row: dict) -> str:
    if row.get("target") is None:
        return "-"
    met = row.get("target_met")
    return f">={row['target']:.2f} " + ("?" if met is None else "met" if met else "missed")


def _render(head: Sequence[str], right: set[int], rows: list[dict], lines: list[tuple[str, ...]]) -> str:
    """Aligned columns; a blank line between groups."""
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]

    def fmt(cells) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [fmt(head), fmt(["-" * w for w in widths])]
    previous = None
    for r, line in zip(rows, lines):
        group = r.get("group") or (r["workload"], r["num_envs"])
        if previous is not None and group != previous:
            out.append("")
        previous = group
        out.append(fmt(line))
    return "\n".join(line.rstrip() for line in out)


def _layout_cell(r: dict, rows: list[dict]) -> str:
    layout = r["layout"] or "-"
    if r.get("best") and sum(1 for o in rows if o["runner"] == r["runner"] and o["workload"] == r["workload"]
                             and o["num_envs"] == r["num_envs"]) > 1:
        layout += " *"
    return layout


def _where_cell(r: dict) -> str:
    """Where the envs step: 'learner 8 + 1 worker', '16 workers', 'learner'."""
    local, workers = r.get("learner_envs") or 0, r["num_workers"] or 0
    parts = ([f"learner {local}" if workers else "learner"] if local else []) + \
            ([f"{workers} worker{'s' if workers != 1 else ''}"] if workers else [])
    return " + ".join(parts) or "-"


def format_table(rows: list[dict]) -> str:
    """The results of ``run_suite`` as an aligned text table (ratios to gymnasium's runners)."""
    head = ("workload", "envs", "runner", "layout", "envs step in", "steps/s", "vs_sync", "vs_async")
    lines = [(r["workload"], str(r["num_envs"]), r["runner"], _layout_cell(r, rows), _where_cell(r),
              f"{r['steps_per_s']:,.0f}", _fmt_ratio(r.get("vs_gym_sync")), _fmt_ratio(r.get("vs_gym_async")))
             for r in rows]
    return _render(head, {1, 5, 6, 7}, rows, lines)


def format_peer_table(rows: list[dict]) -> str:
    """The results of ``run_preset`` (or ``run_groups``) as an aligned text
    table: each row's ratio to its group's peer, and its target."""
    head = ("workload", "envs", "batch", "runner", "layout", "envs step in", "steps/s", "vs_peer", "target")
    lines = [(r["workload"], str(r["num_envs"]), "-" if r.get("batch_size") is None else str(r["batch_size"]),
              r["runner"], _layout_cell(r, rows), _where_cell(r),
              f"{r['steps_per_s']:,.0f}", _fmt_ratio(r.get("vs_peer")), _fmt_target(r))
             for r in rows]
    return _render(head, {1, 2, 6, 7}, rows, lines)


def format_versus_table(rows: list[dict]) -> str:
    """rock_vec's rows (of ``peer_groups``) over each peer, a column a peer,
    then a line per ``versus`` target; empty without such rows."""
    # Here, not at the top, so that the module itself loads nothing of rock_vec:
    # only this table needs the peers' names.
    from ..bench.suites import PEER_OURS, PEER_RUNNERS

    ours = [r for r in rows if r["runner"] in PEER_OURS and r.get("vs") is not None]
    if not ours:
        return ""
    peers = [p for p in PEER_RUNNERS if any(p in r["vs"] for r in ours)]
    head = ("workload", "envs", "runner", "steps/s", *(f"/{p}" for p in peers))
    lines = [(r["workload"], str(r["num_envs"]), r["runner"], f"{r['steps_per_s']:,.0f}",
              *(_fmt_ratio(r["vs"].get(p)) for p in peers)) for r in ours]
    table = _render(head, {1, *range(3, len(head))}, ours, lines)
    return "\n".join([table, *versus_lines(ours)])


def versus_lines(rows: list[dict]) -> list[str]:
    """A line per ``versus`` target of ``rows`` (``groups.Target``): the ratio and whether it is met."""
    return [f"target: {r['workload']} x{r['num_envs']} {r['runner']} over {v['over']}: "
            + ("not measured" if v["ratio"] is None else f"{v['ratio']:.2f}x")
            + f" (>= {v['least']:.2f}: " + ("?" if v["met"] is None else "met" if v["met"] else "missed") + ")"
            for r in rows for v in r.get("versus", [])]


def print_progress(line: str) -> None:
    """``rock-vec bench``'s progress when stderr is not a terminal: each line as it comes."""
    if line:
        print(line, file=sys.stderr, flush=True)


class ProgressBar:
    """``rock-vec bench``'s progress on a terminal: one line redrawn, a bar
    of the measurements done ("[done/total] ..." lines) and the latest;
    other lines (skips) print above it. ``bar("")`` clears it."""

    WIDTH = 24

    def __init__(self, stream):
        self.stream = stream
        self.drawn = False

    def __call__(self, line: str) -> None:
        counted = re.match(r"\[(\d+)/(\d+)\] (.*)", line)
        if self.drawn:
            self.stream.write("\r\033[K")
            self.drawn = False
        if counted:
            done, total, what = int(counted[1]), max(1, int(counted[2])), counted[3]
            filled = min(self.WIDTH, self.WIDTH * done // total)
            text = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} {what}"
            self.stream.write(text[:shutil.get_terminal_size().columns - 1])
            self.drawn = True
        elif line:
            self.stream.write(line + "\n")
        self.stream.flush()
