"""``rock-vec bench --plot FILE.png``: the results as one chart read at a glance.

One panel per workload (three to a row); in each, a cluster of bars per
number of envs, one bar per runner in the same colour everywhere, steps/s
on a log scale (runners differ by orders of magnitude). A peer measured in
several layouts (PufferLib) shows its fastest. Over each of rock_vec's bars,
its ratio to the cluster's reference peer (``REFERENCE_PEERS``: the peer the
table's ratios use). The machine line is the title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: The ratio printed over rock_vec's bars is to the first of these present in the cluster.
REFERENCE_PEERS = ("gym_sync", "rllib_sync", "sb3_subproc", "envpool_sync", "envpool_async", "rock_vec_workers")
#: Panels per row.
COLUMNS = 3


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'rock-vec[bench]'") from exc
    return plt


def plot(rows: Sequence[dict], path: str, title: str) -> None:
    """Writes the bench ``rows`` (``run_suite``/``run_preset`` results) to ``path`` (PNG).

    Raises:
        RuntimeError: matplotlib is missing, naming the extra to install.
        ValueError: no rows to plot.
    """
    if not rows:
        raise ValueError("no results to plot")
    plt = _pyplot()
    rows = _fastest_peer_layouts(rows)
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    runners = list(dict.fromkeys(_label(r) for r in rows))
    palette = plt.get_cmap("tab20" if len(runners) > 10 else "tab10")
    colours = {name: palette(i % palette.N) for i, name in enumerate(runners)}
    references: list[str] = []
    cols = min(COLUMNS, len(workloads))
    nrows = -(-len(workloads) // cols)
    most = max(len({_label(r) for r in rows if r["workload"] == w}) * len({_cluster(r) for r in rows
                                                                         if r["workload"] == w}) for w in workloads)
    width_in = max(5.0, min(9.0, 1.2 + 0.17 * most))
    fig, axes = plt.subplots(nrows, cols, figsize=(width_in * cols, 4.4 * nrows), squeeze=False)
    for ax in axes.flat[len(workloads):]:
        ax.set_visible(False)
    for ax, workload in zip(axes.flat, workloads):
        mine = [r for r in rows if r["workload"] == workload]
        clusters = list(dict.fromkeys(_cluster(r) for r in mine))
        present = list(dict.fromkeys(_label(r) for r in mine))
        width = 0.84 / len(present)
        for c, cluster in enumerate(clusters):
            members = {_label(r): r for r in mine if _cluster(r) == cluster}
            reference = next((members[p] for p in REFERENCE_PEERS if p in members), None)
            if reference is not None and reference["runner"] not in references:
                references.append(reference["runner"])
            for k, name in enumerate(present):
                r = members.get(name)
                if r is None:
                    continue
                x = c + (k - (len(present) - 1) / 2) * width
                ax.bar(x, r["steps_per_s"], width, color=colours[name], label=name if c == 0 else None)
                if reference is not None and r is not reference and _ours(r):
                    ax.text(x, r["steps_per_s"] * 1.08, f"{r['steps_per_s'] / reference['steps_per_s']:.2f}x",
                            ha="center", va="bottom", fontsize=6.5, rotation=90)
        ax.set_yscale("log")
        ax.set_xticks(range(len(clusters)), [_cluster_tick(cluster, mine) for cluster in clusters], fontsize=8)
        ax.set_title(workload)
        ax.set_ylabel("env steps/s (log)")
        top = max(r["steps_per_s"] for r in mine)
        # A decade boundary at least half a decade under the slowest bar, so that every bar shows.
        ax.set_ylim(bottom=10 ** math.floor(math.log10(min(r["steps_per_s"] for r in mine)) - 0.5), top=top * 4)
        ax.grid(axis="y", which="both", alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    ncol = min(len(labels), 6)
    legend_rows = -(-len(labels) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    ratios = f"\nover rock_vec's bars: its steps/s over {' / '.join(references)}'s" if references else ""
    fig.suptitle(title + ratios, fontsize=9)
    legend_share = (0.035 * legend_rows + 0.02) * 2 / (nrows + 1)
    fig.tight_layout(rect=(0, legend_share, 1, 1 - 0.06 / nrows))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ours(row: dict) -> bool:
    return row["runner"].startswith(("rock_vec", "rllib_rock", "sb3_rock"))


def _fastest_peer_layouts(rows: Sequence[dict]) -> list[dict]:
    """The rows, a peer measured in several layouts kept at its fastest (rock_vec's layouts all stay)."""
    best: dict[tuple, dict] = {}
    for r in rows:
        if _ours(r):
            continue
        key = (r["workload"], r["num_envs"], r["runner"])
        if key not in best or r["steps_per_s"] > best[key]["steps_per_s"]:
            best[key] = r
    return [r for r in rows if _ours(r) or best[(r["workload"], r["num_envs"], r["runner"])] is r]


def _label(row: dict) -> str:
    layout = row.get("layout")
    if not _ours(row):
        return row["runner"]
    return row["runner"] + (f" {layout}" if layout not in (None, "default") else "")


def _cluster(row: dict) -> int:
    return row["num_envs"]


def _cluster_tick(num_envs: int, rows: Sequence[dict]) -> str:
    batches = sorted({r["batch_size"] for r in rows if r["num_envs"] == num_envs and r.get("batch_size")})
    return f"x{num_envs}" + (f"\n(batch {', '.join(map(str, batches))})" if batches else "")
