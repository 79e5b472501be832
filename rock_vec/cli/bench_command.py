"""``rock-vec bench``: runs the suites asked for (``rock_vec.bench.suites``
and, for the train suite, ``rock_vec.bench.train_loops``), prints the
machine line, the tables (``tables``) and the skips, and writes the JSON
and the chart.

The checks argparse cannot make (which options apply to which suite, what
the gym suite can run) are here too, beside the settings they read, so
that ``main`` only reports them as usage errors.

rock_vec's benchmark modules and the optional packages (matplotlib, through
``rock_vec.bench.plot``) are imported inside the functions that use them:
a missing optional package then fails only what needs it.
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Sequence

from .exits import EXIT_FAILED, EXIT_OK
from .tables import ProgressBar, format_peer_table, format_table, format_versus_table, print_progress, versus_lines


def machine_line(extra: Sequence[str] = ()) -> str:
    """One line on the machine and versions; ``extra``: optional modules
    (e.g. ``stable_baselines3``, ``envpool``) whose versions to add when they import."""
    import importlib

    import gymnasium
    import numpy

    from .._version import __version__
    from ..placement.cpus import usable_cpus

    parts = [f"rock_vec {__version__}", f"{usable_cpus()} usable CPUs", f"python {platform.python_version()}",
             f"gymnasium {gymnasium.__version__}", f"numpy {numpy.__version__}"]
    for name in extra:
        try:
            parts.append(f"{name} {importlib.import_module(name).__version__}")
        except Exception:
            pass
    return " | ".join(parts)


#: The options only the gym suite takes; the other suites run fixed groups.
GYM_ONLY = ("workloads", "envs", "runners", "batch_size", "sweep")
#: Of those, what --peers takes too (its groups are --workloads x --envs).
PEERS_TOO = ("workloads", "envs", "sweep")


def _check_gym_suite(workloads: Sequence[str], env_counts: Sequence[int], runners: Sequence[str],
                     batch_size: int | None) -> None:
    """Raises ValueError (a usage error) on a combination the gym suite cannot run."""
    from ..bench.runners import RUNNER_SPECS, check_case

    batched = [r for r in runners if RUNNER_SPECS[r].batched]
    if batched and batch_size is None:
        raise ValueError(f"{', '.join(batched)} {'needs' if len(batched) == 1 else 'need'} --batch-size")
    if batch_size is not None and not batched:
        raise ValueError("--batch-size applies to the async runners only "
                         f"({', '.join(r.name for r in RUNNER_SPECS.values() if r.batched)})")
    for w in workloads:
        for n in env_counts:
            for r in runners:
                check_case(r, w, n, None, batch_size if r in batched else None)


def _skip_notes(skipped: dict[str, str]) -> list[str]:
    """One ``note: skipped ...`` line per reason."""
    by_reason: dict[str, list[str]] = {}
    for runner, reason in skipped.items():
        by_reason.setdefault(reason, []).append(runner)
    return [f"note: skipped {', '.join(names)}: {reason}" for reason, names in by_reason.items()]


def _suites(args) -> list[str]:
    """The suites to run, in order; ``--peers`` is the ``peers`` suite."""
    suites = list(args.suite or ([] if args.peers else ["gym"]))
    return suites + ["peers"] if args.peers else suites


def bench_usage_error(args) -> str | None:
    """What is wrong with a ``bench`` command line that argparse let through, or None."""
    suites = _suites(args)
    given = [name for name in GYM_ONLY if getattr(args, name) not in (None, False)]
    wrong = [f"--{name.replace('_', '-')}" for name in given
             if "gym" not in suites and not ("peers" in suites and name in PEERS_TOO)]
    if wrong:
        verb = "applies" if len(wrong) == 1 else "apply"
        if "peers" in suites:
            return f"{', '.join(wrong)} {verb} to the gym suite only, not to --peers (which runs every peer)"
        return (f"{', '.join(wrong)} {verb} to the gym suite only; --suite {','.join(suites)} runs fixed groups "
                "(see rock-vec bench --help)")
    if "gym" in suites:
        settings = _settings(args)
        try:
            _check_gym_suite(settings["workloads"], settings["env_counts"], settings["runners"], args.batch_size)
        except ValueError as exc:
            return str(exc)
    return None


def _settings(args) -> dict:
    """The gym suite's settings and every suite's repeats and seconds: as given, else --quick's, else the defaults."""
    from ..bench.suites import GYM_WORKLOADS, RUNNERS, quick_settings

    quick = quick_settings() if args.quick else {}
    return {
        "workloads": args.workloads or quick.get("workloads") or list(GYM_WORKLOADS),
        "env_counts": args.envs or quick.get("env_counts") or [4, 16, 64],
        "runners": args.runners or list(RUNNERS),
        "repeats": args.repeats or quick.get("repeats") or 3,
        "seconds": args.seconds or quick.get("seconds") or 2.0,
    }


def bench_command(args) -> int:
    """Runs ``rock-vec bench`` on a command line ``bench_usage_error`` passed; returns the exit code."""
    from ..bench.driver_cost import format_driver_costs
    from ..bench.groups import group_unavailable
    from ..bench.runners import RUNNER_SPECS, SWEEP_LAYOUTS, import_error, unavailable
    from ..bench.suites import (STARTUP_SIZES, SUITES, cluster_of, peer_groups, run_groups, run_preset, run_suite,
                                same_results)
    from ..bench.timing import container_startup

    suites = _suites(args)
    settings = _settings(args)
    workloads, env_counts, runners = settings["workloads"], settings["env_counts"], settings["runners"]
    repeats, seconds = settings["repeats"], settings["seconds"]
    sweep = args.sweep  # --quick never sweeps unless asked
    layouts = SWEEP_LAYOUTS if sweep else [None]

    groups_of_peers = peer_groups(workloads, env_counts, layouts) if "peers" in suites else []

    def runners_of(suite: str) -> list[str]:
        if suite == "gym":
            return runners
        groups = groups_of_peers if suite == "peers" else SUITES[suite].groups
        return list(dict.fromkeys(r for g in groups for r in g.runners))

    used = {r for suite in suites for r in runners_of(suite)}
    extra = [m for m in ("stable_baselines3", "envpool", "pufferlib", "ray")
             if any((RUNNER_SPECS[r].requires or "").split(".")[0] == m for r in used)]
    print(machine_line(extra))
    rows_received = ", or rows received for async runners" if any(RUNNER_SPECS[r].batched for r in used) else ""
    print(f"medians of {repeats} interleaved runs of {seconds:g} s each; steps/s counts env steps "
          f"(batch steps x envs{rows_received}); vs_X = this row / X's steps/s"
          + ("; * best rock_vec layout" if sweep else ""))
    sys.stdout.flush()

    progress = ProgressBar(sys.stderr) if sys.stderr.isatty() else print_progress

    skipped = {r: unavailable(r) for r in RUNNER_SPECS if r in used and unavailable(r)}
    results: list[dict] = []
    train_loops: dict = {}  # the train suite's gap sweep and PPO loop, the ray suite's driver costs
    try:
        for suite in suites:
            if len(suites) > 1:
                print(f"\n== suite {suite}", flush=True)
            if suite == "gym":
                rows = run_suite(workloads, env_counts, repeats, seconds, layouts, runners=runners,
                                       progress=progress, batch_size=args.batch_size)
                for r in rows:
                    r["suite"] = "gym"
                table = format_table(rows)
            elif suite == "peers":
                rows = run_groups(groups_of_peers, repeats, seconds, progress=progress)
                for r in rows:
                    r["suite"] = "peers"
                print("every peer: vs_peer over gym_sync; then rock_vec's ratio over each peer at its fastest layout")
                table = "\n\n".join(t for t in (format_peer_table(rows), format_versus_table(rows)) if t)
            else:
                spec = SUITES[suite]
                # First, while torch still has its default thread count (the groups' policies keep to one).
                loops = _train_loops(repeats, seconds, progress) if suite == "train" else None
                costs = None
                if spec.cluster is not None and import_error("ray"):
                    rows = []  # its runners are skipped, each noted below
                elif spec.cluster is not None:
                    with cluster_of(spec):
                        rows = run_preset(suite, repeats, seconds, progress=progress, own_cluster=False)
                        costs = _driver_costs(repeats, seconds, progress)
                else:
                    rows = run_preset(suite, repeats, seconds, progress=progress)
                print(spec.description)
                print("vs_peer: over " + "; ".join(f"{g.peer} ({g.label()})" for g in spec.groups))
                table = "\n".join([format_peer_table(rows), *versus_lines(rows)])
                if suite == "docker" and not unavailable("rock_vec_docker"):
                    for n in STARTUP_SIZES:
                        took = container_startup(n)
                        target = f" (target <= 3 s: {'met' if took <= 3 else 'missed'})" if n == 16 else ""
                        table += f"\n{n} containers ready in {took:.2f} s{target}"
                for group in spec.groups:
                    if group_unavailable(group):
                        table += f"\nnote: skipped {group_unavailable(group)}"
                    elif group.policy == "mlp":  # a seeded, sampling policy: every vector runner must agree
                        same = same_results(group)
                        table += (f"\n{group.label()}: same observations, rewards and flags as {group.peer} over "
                                  f"200 steps: {'yes' if same else 'NO'}")
                if loops is not None:
                    table += "".join(f"\n\n{t}" for t in loops.pop("tables") if t)
                    train_loops.update(loops)
                if costs is not None:
                    table += f"\n\n{format_driver_costs(costs)}"
                    train_loops["driver_costs"] = costs
            progress("")
            print(table)
            for line in _skip_notes({r: skipped[r] for r in runners_of(suite) if r in skipped}):
                print(line)
            sys.stdout.flush()
            results.extend(rows)
    except KeyboardInterrupt:
        progress("")
        print("rock-vec bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        progress("")
        print(f"rock-vec bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.plot:
        from ..bench import plot

        try:
            plot.plot(results, args.plot, machine_line(extra))
        except (RuntimeError, ValueError, OSError) as exc:
            print(f"rock-vec bench: cannot plot to {args.plot}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"chart written to {args.plot}")
    if args.json:
        meta = {"machine": machine_line(extra), "repeats": repeats, "seconds": seconds, "sweep": sweep,
                "suites": suites, "skipped": skipped}
        try:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "results": results, **train_loops}, f, indent=2)
        except OSError as exc:
            print(f"rock-vec bench: cannot write {args.json}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"results written to {args.json}")
    return EXIT_OK


def _driver_costs(repeats: int, seconds: float, progress) -> list[dict]:
    """The ray suite's second part, on its cluster: the driver's CPU per
    step over 1 and 2 pools (one per node), and the model beyond
    (``rock_vec.bench.driver_cost``)."""
    from ..bench import driver_cost

    measured = [driver_cost.measure_driver(p, seconds, repeats=repeats, progress=progress) for p in (1, 2)]
    return driver_cost.model(measured)


def _train_loops(repeats: int, seconds: float, progress) -> dict:
    """The train suite's loops with a learner between steps (``rock_vec.bench.train_loops``):
    {"gap_sweep": rows, "ppo": rows, "tables": [text, ...]}. Each sweep
    point measures for half of ``seconds``; the PPO loop runs 8 iterations
    (fewer for runs under a second)."""
    from ..bench import train_loops as loops

    sweep = loops.run_sweep(repeats=repeats, seconds=seconds / 2, progress=progress)
    ppo = loops.run_ppo(iterations=max(1, min(8, int(seconds * 8))), repeats=repeats, progress=progress)
    progress("")
    why = loops.import_error("torch")
    notes = [f"note: skipped the mlp gap sweep and the PPO loop: {why}"] if why else []
    return {"gap_sweep": sweep, "ppo": ppo, "tables": [loops.format_sweep(sweep), loops.format_ppo(ppo), *notes]}
