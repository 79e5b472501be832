"""The ``rock-vec`` command.

    rock-vec bench --quick                 # about half a minute
    rock-vec bench --workloads cartpole --envs 4,16,64 --sweep --json out.json
    rock-vec bench --suite async,sb3,envpool --repeats 5 --seconds 3
    rock-vec clean --dry-run
    rock-vec image build --env-package ale-py    # the docker backend's worker image

Exit codes: 0 done, 1 failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Callable, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _csv(kind: Callable[[str], object], choices: Sequence[str] | None = None):
    """An argparse type: a comma-separated list of ``kind`` values."""

    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list, got nothing")
        out = []
        for item in items:
            if choices is not None and item not in choices:
                raise argparse.ArgumentTypeError(f"unknown value {item!r} (choose from {', '.join(choices)})")
            try:
                value = kind(item)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{item!r} is not a valid {kind.__name__}") from None
            if isinstance(value, int) and value < 1:
                raise argparse.ArgumentTypeError(f"{item!r} must be positive")
            if value not in out:
                out.append(value)
        return out

    return parse


def _positive(kind: Callable[[str], object]):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    from .bench import GYM_WORKLOADS, RUNNER_SPECS, RUNNERS, SUITES, WORKLOADS

    parser = argparse.ArgumentParser(prog="rock-vec", description="rock_vec tools: throughput benchmark, cleanup.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    suites = ("gym", *SUITES)
    bench = sub.add_parser(
        "bench", help="measure steps/s of rock_vec against gymnasium's vector envs, SB3 and EnvPool",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measures env steps per second of several runners on the same workloads, interleaved, and "
                    "prints medians and ratios.\n\n"
                    "Suites (--suite):\n"
                    "  gym: rock_vec, gymnasium's SyncVectorEnv and AsyncVectorEnv(shared_memory=True) on "
                    "--workloads x --envs\n      (default: all x 4,16,64); ratios vs_sync, vs_async\n"
                    + "".join(f"  {s.name}: {s.description}\n" for s in SUITES.values())
                    + "  The async, sb3 and envpool suites run fixed groups and print vs_peer, the ratio to "
                      "each group's peer,\n  and whether a target is met. Runners whose optional module "
                      "(stable_baselines3, envpool)\n  is missing are skipped with a note.\n\n"
                    "Workloads:\n" + "".join(f"  {w.name}: {w.description}\n" for w in WORKLOADS.values())
                    + "\nRunners (--runners, gym suite):\n"
                    + "".join(f"  {r.name}: {r.description}\n" for r in RUNNER_SPECS.values())
                    + "\nExamples:\n"
                      "  rock-vec bench --quick\n"
                      "  rock-vec bench --suite async,sb3,envpool --repeats 5 --seconds 3\n"
                      "  rock-vec bench --workloads jitter --envs 64 --runners rock_vec,rock_vec_async,gym_async "
                      "--batch-size 16")
    bench.add_argument("--suite", type=_csv(str, suites), metavar="LIST",
                       help=f"comma-separated, from {','.join(suites)} (default: gym)")
    bench.add_argument("--quick", action="store_true",
                       help="gym suite: cartpole and atari_like at 16 envs; any suite: 1 s per measurement, "
                            "3 repeats (options given explicitly still apply)")
    bench.add_argument("--workloads", type=_csv(str, list(WORKLOADS)), metavar="LIST",
                       help=f"gym suite: comma-separated, from {','.join(WORKLOADS)} "
                            f"(default: {','.join(GYM_WORKLOADS)})")
    bench.add_argument("--envs", type=_csv(int), metavar="LIST", help="gym suite: numbers of envs (default: 4,16,64)")
    bench.add_argument("--runners", type=_csv(str, list(RUNNER_SPECS)), metavar="LIST",
                       help=f"gym suite: comma-separated, from {','.join(RUNNER_SPECS)} "
                            f"(default: {','.join(RUNNERS)})")
    bench.add_argument("--batch-size", type=_positive(int), metavar="N",
                       help="gym suite: envs per recv for the async runners (must divide every --envs)")
    bench.add_argument("--repeats", type=_positive(int), help="measurements per runner (default: 3)")
    bench.add_argument("--seconds", type=_positive(float), help="seconds per measurement (default: 2)")
    bench.add_argument("--sweep", action="store_true",
                       help="gym suite: also try rock_vec layouts with envs_per_worker 1,2,4,...,32 and mark the best")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")

    clean = sub.add_parser("clean", help="remove shared-memory segments left by dead rock_vec processes",
                           description="Removes /dev/shm segments whose creating process is gone.")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    image = sub.add_parser("image", help="the docker backend's worker image",
                           description="Builds the image backend='docker' runs (needs a Docker engine and a base "
                                       "image: launcher/make-base-image.sh).")
    image_sub = image.add_subparsers(dest="image_command", metavar="{build}")
    build = image_sub.add_parser("build", help="build the worker image from this rock_vec and env packages")
    build.add_argument("--env-package", action="append", default=[], metavar="PKG",
                       help="a pip requirement the envs need in the container (repeat for more)")
    build.add_argument("--tag", help="the image's tag (default: rock-vec-worker:VERSION, the backend's default)")
    build.add_argument("--base", help="base image with the learner's Python (default: rock-vec-base:bookworm)")
    parser.commands = {"bench": bench, "clean": clean, "image": image}
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``rock-vec`` with ``argv`` (default: the command line); returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("rock-vec: error: a command is required (bench, clean, image)", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "bench":
        problem = _bench_usage_error(args)
        if problem:
            parser.commands["bench"].print_usage(sys.stderr)
            print(f"rock-vec bench: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        return _bench(args)
    if args.command == "image":
        return _image(args, parser)
    return _clean(args)


def _image(args, parser) -> int:
    if args.image_command != "build":
        parser.commands["image"].print_usage(sys.stderr)
        print("rock-vec image: error: a subcommand is required (build)", file=sys.stderr)
        return EXIT_USAGE
    from .backends import image

    try:
        tag = image.build(args.env_package, tag=args.tag, base=args.base or image.DEFAULT_BASE)
    except RuntimeError as exc:
        print(f"rock-vec image build: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"built {tag}")
    return EXIT_OK


# ---------------------------------------------------------------- bench


def machine_line(extra: Sequence[str] = ()) -> str:
    """One line on the machine and versions; ``extra``: optional modules
    (e.g. ``stable_baselines3``, ``envpool``) whose versions to add when they import."""
    import importlib

    import gymnasium
    import numpy

    from . import __version__
    from .pool import usable_cpus

    parts = [f"rock_vec {__version__}", f"{usable_cpus()} usable CPUs", f"python {platform.python_version()}",
             f"gymnasium {gymnasium.__version__}", f"numpy {numpy.__version__}"]
    for name in extra:
        try:
            parts.append(f"{name} {importlib.import_module(name).__version__}")
        except Exception:
            pass
    return " | ".join(parts)


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


GYM_ONLY = ("workloads", "envs", "runners", "batch_size", "sweep")


def _check_gym_suite(workloads: Sequence[str], env_counts: Sequence[int], runners: Sequence[str],
                     batch_size: int | None) -> None:
    """Raises ValueError (a usage error) on a combination the gym suite cannot run."""
    from . import bench

    batched = [r for r in runners if bench.RUNNER_SPECS[r].batched]
    if batched and batch_size is None:
        raise ValueError(f"{', '.join(batched)} {'needs' if len(batched) == 1 else 'need'} --batch-size")
    if batch_size is not None and not batched:
        raise ValueError("--batch-size applies to the async runners only "
                         f"({', '.join(r.name for r in bench.RUNNER_SPECS.values() if r.batched)})")
    for w in workloads:
        for n in env_counts:
            for r in runners:
                bench.check_case(r, w, n, None, batch_size if r in batched else None)


def _skip_notes(skipped: dict[str, str]) -> list[str]:
    """One ``note: skipped ...`` line per reason."""
    by_reason: dict[str, list[str]] = {}
    for runner, reason in skipped.items():
        by_reason.setdefault(reason, []).append(runner)
    return [f"note: skipped {', '.join(names)}: {reason}" for reason, names in by_reason.items()]


def _bench_usage_error(args) -> str | None:
    """What is wrong with a ``bench`` command line that argparse let through, or None."""
    from . import bench

    suites = args.suite or ["gym"]
    given = [f"--{name.replace('_', '-')}" for name in GYM_ONLY if getattr(args, name) not in (None, False)]
    if given and "gym" not in suites:
        verb = "applies" if len(given) == 1 else "apply"
        return (f"{', '.join(given)} {verb} to the gym suite only; --suite {','.join(suites)} runs fixed groups "
                "(see rock-vec bench --help)")
    if "gym" in suites:
        settings = _settings(args, bench)
        try:
            _check_gym_suite(settings["workloads"], settings["env_counts"], settings["runners"], args.batch_size)
        except ValueError as exc:
            return str(exc)
    return None


def _settings(args, bench) -> dict:
    quick = bench.quick_settings() if args.quick else {}
    return {
        "workloads": args.workloads or quick.get("workloads") or list(bench.GYM_WORKLOADS),
        "env_counts": args.envs or quick.get("env_counts") or [4, 16, 64],
        "runners": args.runners or list(bench.RUNNERS),
        "repeats": args.repeats or quick.get("repeats") or 3,
        "seconds": args.seconds or quick.get("seconds") or 2.0,
    }


def _bench(args) -> int:
    from . import bench

    suites = args.suite or ["gym"]
    settings = _settings(args, bench)
    workloads, env_counts, runners = settings["workloads"], settings["env_counts"], settings["runners"]
    repeats, seconds = settings["repeats"], settings["seconds"]
    sweep = args.sweep  # --quick never sweeps unless asked
    layouts = bench.SWEEP_LAYOUTS if sweep else [None]

    def runners_of(suite: str) -> list[str]:
        if suite == "gym":
            return runners
        return list(dict.fromkeys(r for g in bench.SUITES[suite].groups for r in g.runners))

    used = {r for suite in suites for r in runners_of(suite)}
    extra = [m for m in ("stable_baselines3", "envpool")
             if any(bench.RUNNER_SPECS[r].requires == m for r in used)]
    print(machine_line(extra))
    rows_received = ", or rows received for async runners" if any(bench.RUNNER_SPECS[r].batched for r in used) else ""
    print(f"medians of {repeats} interleaved runs of {seconds:g} s each; steps/s counts env steps "
          f"(batch steps x envs{rows_received}); vs_X = this row / X's steps/s"
          + ("; * best rock_vec layout" if sweep else ""))
    sys.stdout.flush()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    skipped = {r: bench.unavailable(r) for r in bench.RUNNER_SPECS if r in used and bench.unavailable(r)}
    results: list[dict] = []
    try:
        for suite in suites:
            if len(suites) > 1:
                print(f"\n== suite {suite}", flush=True)
            if suite == "gym":
                rows = bench.run_suite(workloads, env_counts, repeats, seconds, layouts, runners=runners,
                                       progress=progress, batch_size=args.batch_size)
                for r in rows:
                    r["suite"] = "gym"
                table = format_table(rows)
            else:
                spec = bench.SUITES[suite]
                rows = bench.run_preset(suite, repeats, seconds, progress=progress)
                print(spec.description)
                print("vs_peer: over " + "; ".join(f"{g.peer} ({g.label()})" for g in spec.groups))
                table = format_peer_table(rows)
                for group in spec.groups:
                    if bench.group_unavailable(group):
                        table += f"\nnote: skipped {bench.group_unavailable(group)}"
                    elif group.policy == "mlp":  # a seeded, sampling policy: every vector runner must agree
                        same = bench.same_results(group)
                        table += (f"\n{group.label()}: same observations, rewards and flags as {group.peer} over "
                                  f"200 steps: {'yes' if same else 'NO'}")
            print(table)
            for line in _skip_notes({r: skipped[r] for r in runners_of(suite) if r in skipped}):
                print(line)
            sys.stdout.flush()
            results.extend(rows)
    except KeyboardInterrupt:
        print("rock-vec bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"rock-vec bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        meta = {"machine": machine_line(extra), "repeats": repeats, "seconds": seconds, "sweep": sweep,
                "suites": suites, "skipped": skipped}
        try:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "results": results}, f, indent=2)
        except OSError as exc:
            print(f"rock-vec bench: cannot write {args.json}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"results written to {args.json}")
    return EXIT_OK


# ---------------------------------------------------------------- clean


def _clean(args) -> int:
    from .segment import stale_segments, sweep_stale

    if args.dry_run:
        found = stale_segments()
        for path in found:
            print(f"would remove {path}")
        print(f"{len(found)} stale segment(s) found (dry run: nothing removed)")
        return EXIT_OK
    removed = sweep_stale()
    for path in removed:
        print(f"removed {path}")
    print(f"{len(removed)} stale segment(s) removed")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
