"""``rock-vec bench --plot FILE.png``: the results as one chart read at a glance.

One panel per workload; in each, a cluster of bars per number of envs (and
batch size), one bar per runner in the same colour everywhere, steps/s on a
log scale (runners differ by orders of magnitude). Over each of rock_vec's
bars, its ratio to the cluster's reference peer (``REFERENCE_PEERS``: the
peer the table's ratios use). The machine line is the title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: The ratio printed over rock_vec's bars is to the first of these present in the cluster.
REFERENCE_PEERS = ("gym_sync", "rllib_sync", "sb3_subproc", "envpool_sync", "envpool_async", "rock_vec_workers")


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
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    runners = list(dict.fromkeys(_label(r) for r in rows))
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(runners)}
    references: list[str] = []
    fig, axes = plt.subplots(1, len(workloads), figsize=(max(6.0, 4.2 * len(workloads)), 4.8), squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        mine = [r for r in rows if r["workload"] == workload]
        clusters = list(dict.fromkeys(_cluster(r) for r in mine))
        present = list(dict.fromkeys(_label(r) for r in mine))
        width = 0.8 / len(present)
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
                if reference is not None and r is not reference and r["runner"].startswith(("rock_vec", "rllib_rock",
                                                                                            "sb3_rock")):
                    ax.text(x, r["steps_per_s"] * 1.08, f"{r['steps_per_s'] / reference['steps_per_s']:.2f}x",
                            ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_yscale("log")
        ax.set_xticks(range(len(clusters)), clusters)
        ax.set_title(workload)
        ax.set_ylabel("env steps/s (log)")
        top = max(r["steps_per_s"] for r in mine)
        # A decade boundary at least half a decade under the slowest bar, so that every bar shows.
        ax.set_ylim(bottom=10 ** math.floor(math.log10(min(r["steps_per_s"] for r in mine)) - 0.5), top=top * 3)
        ax.grid(axis="y", which="both", alpha=0.3)
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    ratios = f"\nover rock_vec's bars: its steps/s over {' / '.join(references)}'s" if references else ""
    fig.suptitle(title + ratios, fontsize=9)
    fig.tight_layout(rect=(0, 0.08 + 0.03 * (len(labels) > 5), 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _label(row: dict) -> str:
    layout = row.get("layout")
    return row["runner"] + (f" {layout}" if layout not in (None, "default") else "")


def _cluster(row: dict) -> str:
    return f"x{row['num_envs']}" + (f" batch {row['batch_size']}" if row.get("batch_size") else "")
