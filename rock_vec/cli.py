"""The ``rock-vec`` command.

    rock-vec bench --quick                 # about half a minute
    rock-vec bench --workloads cartpole --envs 4,16,64 --sweep --json out.json
    rock-vec clean --dry-run

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
    from .bench import WORKLOADS

    parser = argparse.ArgumentParser(prog="rock-vec", description="rock_vec tools: throughput benchmark, cleanup.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = sub.add_parser(
        "bench", help="measure steps/s of rock_vec against gymnasium's vector envs",
        description="Measures env steps per second of rock_vec, gymnasium's SyncVectorEnv and "
                    "AsyncVectorEnv(shared_memory=True) on the same workloads, interleaved, and prints "
                    "medians and ratios. Workloads: "
                    + "; ".join(f"{w.name}: {w.description}" for w in WORKLOADS.values()))
    bench.add_argument("--quick", action="store_true",
                       help="cartpole and atari_like at 16 envs, 1 s per measurement, 3 repeats "
                            "(options given explicitly still apply)")
    bench.add_argument("--workloads", type=_csv(str, list(WORKLOADS)), metavar="LIST",
                       help=f"comma-separated, from {','.join(WORKLOADS)} (default: all)")
    bench.add_argument("--envs", type=_csv(int), metavar="LIST", help="numbers of envs (default: 4,16,64)")
    bench.add_argument("--repeats", type=_positive(int), help="measurements per runner (default: 3)")
    bench.add_argument("--seconds", type=_positive(float), help="seconds per measurement (default: 2)")
    bench.add_argument("--sweep", action="store_true",
                       help="also try rock_vec layouts with envs_per_worker 1,2,4,...,32 and mark the best")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")

    clean = sub.add_parser("clean", help="remove shared-memory segments left by dead rock_vec processes",
                           description="Removes /dev/shm segments whose creating process is gone.")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
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
        print("rock-vec: error: a command is required (bench, clean)", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "bench":
        return _bench(args)
    return _clean(args)


# ---------------------------------------------------------------- bench


def machine_line() -> str:
    import gymnasium
    import numpy

    from . import __version__
    from .bench import usable_cpus

    return (f"rock_vec {__version__} | {usable_cpus()} usable CPUs | python {platform.python_version()} | "
            f"gymnasium {gymnasium.__version__} | numpy {numpy.__version__}")


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(rows: list[dict]) -> str:
    """The results of ``run_suite`` as an aligned text table."""
    head = ("workload", "envs", "runner", "layout", "workers", "steps/s", "vs_sync", "vs_async")
    lines = []
    for r in rows:
        layout = r["layout"] or "-"
        if r.get("best") and sum(1 for o in rows if o["runner"] == "rock_vec" and o["workload"] == r["workload"]
                                 and o["num_envs"] == r["num_envs"]) > 1:
            layout += " *"
        lines.append((r["workload"], str(r["num_envs"]), r["runner"], layout,
                      "-" if r["num_workers"] is None else str(r["num_workers"]),
                      f"{r['steps_per_s']:,.0f}", _fmt_ratio(r.get("vs_gym_sync")),
                      _fmt_ratio(r.get("vs_gym_async"))))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    right = {1, 4, 5, 6, 7}

    def fmt(cells) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [fmt(head), fmt(["-" * w for w in widths])]
    previous = None
    for r, line in zip(rows, lines):
        group = (r["workload"], r["num_envs"])
        if previous is not None and group != previous:
            out.append("")
        previous = group
        out.append(fmt(line))
    return "\n".join(line.rstrip() for line in out)


def _bench(args) -> int:
    from . import bench

    quick = bench.quick_settings() if args.quick else {}
    workloads = args.workloads or quick.get("workloads") or list(bench.WORKLOADS)
    env_counts = args.envs or quick.get("env_counts") or [4, 16, 64]
    repeats = args.repeats or quick.get("repeats") or 3
    seconds = args.seconds or quick.get("seconds") or 2.0
    sweep = args.sweep  # --quick never sweeps unless asked

    print(machine_line())
    print(f"medians of {repeats} interleaved runs of {seconds:g} s each; steps/s counts env steps "
          f"(batch steps x envs); vs_X = this row / X's steps/s" + ("; * best rock_vec layout" if sweep else ""))
    sys.stdout.flush()

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    layouts = bench.SWEEP_LAYOUTS if sweep else [None]
    try:
        rows = bench.run_suite(workloads, env_counts, repeats, seconds, layouts, progress=progress)
    except KeyboardInterrupt:
        print("rock-vec bench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"rock-vec bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(format_table(rows))
    if args.json:
        meta = {"machine": machine_line(), "repeats": repeats, "seconds": seconds, "sweep": sweep}
        try:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "results": rows}, f, indent=2)
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
