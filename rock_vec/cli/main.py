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
import re
import shutil
import sys
from typing import Callable, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _csv(kind: Callable[[str], object], choices: Sequence[str] | None = None, minimum: int = 1):
    """An argparse type: a comma-separated list of ``kind`` values (ints at least ``minimum``)."""

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
            if isinstance(value, int) and value < minimum:
                raise argparse.ArgumentTypeError(f"{item!r} must be positive" if minimum == 1 else
                                                 f"{item!r} must be at least {minimum}")
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
    from ..bench.suites import GYM_WORKLOADS, OVERSUBSCRIBED, PEER_RUNNERS, RUNNER_SPECS, RUNNERS, SUITES, WORKLOADS

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
                    + "  Suites other than gym run fixed groups and print vs_peer, the ratio to "
                      "each group's peer,\n  and whether a target is met. Runners whose optional module "
                      "(stable_baselines3, envpool, ray)\n  is missing are skipped with a note.\n\n"
                    "  --peers: rock_vec (its step with copies and with views, async batches of half the envs, workers = "
                    f"{OVERSUBSCRIBED}x CPUs) against\n      {', '.join(PEER_RUNNERS)}\n"
                    "      on --workloads x --envs; ratios over each peer at its fastest layout; the 16-env targets\n\n"
                    "Workloads:\n" + "".join(f"  {w.name}: {w.description}\n" for w in WORKLOADS.values())
                    + "\nRunners (--runners, gym suite):\n"
                    + "".join(f"  {r.name}: {r.description}\n" for r in RUNNER_SPECS.values())
                    + "\nExamples:\n"
                      "  rock-vec bench --quick\n"
                      "  rock-vec bench --suite async,sb3,envpool --repeats 5 --seconds 3\n"
                      "  rock-vec bench --peers --envs 16 --plot peers.png\n"
                      "  rock-vec bench --workloads jitter --envs 64 --runners rock_vec,rock_vec_async,gym_async "
                      "--batch-size 16")
    bench.add_argument("--suite", type=_csv(str, suites), metavar="LIST",
                       help=f"comma-separated, from {','.join(suites)} (default: gym)")
    bench.add_argument("--peers", action="store_true",
                       help="rock_vec against every peer (gymnasium, SB3, EnvPool, PufferLib) on --workloads x --envs, "
                            "with a ratio over each; the 16-env targets checked")
    bench.add_argument("--quick", action="store_true",
                       help="gym suite: cartpole and atari_like at 16 envs; any suite: 1 s per measurement, "
                            "3 repeats (options given explicitly still apply)")
    bench.add_argument("--workloads", type=_csv(str, list(WORKLOADS)), metavar="LIST",
                       help=f"gym suite and --peers: comma-separated, from {','.join(WORKLOADS)} "
                            f"(default: {','.join(GYM_WORKLOADS)})")
    bench.add_argument("--envs", type=_csv(int), metavar="LIST", help="gym suite and --peers: numbers of envs (default: 4,16,64)")
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
    bench.add_argument("--plot", metavar="PATH",
                       help="also draw the results as a PNG chart to PATH (needs matplotlib: rock-vec[bench])")

    clean = sub.add_parser("clean", help="remove what dead rock_vec learners left: segments, containers, listings",
                           description="Removes /dev/shm segments whose creating process is gone, the docker "
                                       "backend's containers of learners that are gone (this host's, when an engine "
                                       "answers), and the listings of their pools.")
    clean.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    sub.add_parser("topology", help="NUMA nodes, cores, usable CPUs and GPUs of this machine",
                   description="Prints what placement sees: NUMA nodes and their cores (SMT siblings together), "
                               "the CPUs this process may use, and the GPUs with their NUMA node.")
    plan = sub.add_parser("plan", help="where workers would run", description="Prints the plan of "
                          "placement='numa' for a pool of --workers workers.")
    plan.add_argument("--workers", type=_positive(int), required=True, help="number of worker processes")
    plan.add_argument("--gpu", help="the learner's GPU: index, UUID or PCI bus id")
    plan.add_argument("--learner-cores", type=int, default=1, help="whole cores kept for the learner (default 1)")
    plan.add_argument("--strict", action="store_true", help="refuse to put two workers on one core")
    plan.add_argument("--cpus", help="only these CPUs, e.g. 0-7,16 (each usable by this process)")
    sub.add_parser("ps", help="list running pools and their workers or containers",
                   description="Lists this user's pools: learner, backend, where the envs step, and every worker "
                               "with its pid, envs and container; a pool whose learner is gone is marked stale.")

    top = sub.add_parser("top", help="a live view of a running pool (read-only)",
                         description="Attaches read-only to a running pool of this user (the only one, or POOL: an "
                                     "id or its prefix from rock-vec ps) and shows, every --interval seconds, each "
                                     "worker's env steps/s, time per env step, share of time waiting, restarts, "
                                     "state and heartbeat age, the learner's share, and the returns of the "
                                     "episodes that finished. It never changes the pool. Needs rich "
                                     "(pip install 'rock-vec[monitor]').")
    top.add_argument("pool", nargs="?", help="the pool's id or a prefix of it (default: the only running pool)")
    top.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between readings (default 1)")
    top.add_argument("--once", action="store_true", help="print one view (two readings an interval apart) and exit")

    watch = sub.add_parser(
        "watch", help="frames of chosen envs of a running pool, as a grid: to a GIF, PNG or MP4, or live",
        description="Asks the workers of a running pool of this user (the only one, or POOL) for render() frames of "
                    "--envs, every 1/--fps seconds for --seconds, and tiles them into a grid. Each env renders on "
                    "whoever steps it, between two steps, and the frame comes back through the pool's memory: the "
                    "training loop goes on (an env's step that renders takes the render's time longer). The pool "
                    "must be built with render_mode='rgb_array'. Needs Pillow for GIF/PNG (pip install "
                    "'rock-vec[monitor]'), ffmpeg on the PATH for MP4, a display for --live.")
    watch.add_argument("pool", nargs="?", help="the pool's id or a prefix of it (default: the only running pool)")
    watch.add_argument("--envs", type=_csv(int, minimum=0), metavar="LIST", help="env indices (default: the first 4)")
    watch.add_argument("--out", metavar="FILE", help="write the grid to FILE: .gif or .mp4 (every frame), .png (the last)")
    watch.add_argument("--live", action="store_true", help="show the grid in a window (needs a display)")
    watch.add_argument("--seconds", type=_positive(float), default=10.0, help="how long to watch (default 10)")
    watch.add_argument("--fps", type=_positive(float), default=5.0, help="grids per second (default 5)")

    serve = sub.add_parser("serve-metrics", help="a Prometheus endpoint for this user's running pools",
                           description="Serves /metrics (Prometheus text format) until stopped: per pool and host, "
                                       "env steps, seconds stepping, restarts, readiness, exit signal and heartbeat "
                                       "age; per pool, episodes and the mean last return. Read-only, like "
                                       "rock-vec top. Needs prometheus_client (pip install 'rock-vec[monitor]').")
    serve.add_argument("--port", type=int, default=9464, help="port to listen on (default 9464)")
    serve.add_argument("--addr", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")

    image = sub.add_parser("image", help="the docker backend's worker image",
                           description="Builds the image backend='docker' runs (needs a Docker engine and a base "
                                       "image: launcher/make-base-image.sh).")
    image_sub = image.add_subparsers(dest="image_command", metavar="{build}")
    build = image_sub.add_parser("build", help="build the worker image from this rock_vec and env packages")
    build.add_argument("--env-package", action="append", default=[], metavar="PKG",
                       help="a pip requirement the envs need in the container (repeat for more)")
    build.add_argument("--tag", help="the image's tag (default: rock-vec-worker:VERSION, the backend's default)")
    build.add_argument("--base", help="base image with the learner's Python (default: rock-vec-base:bookworm)")
    parser.commands = {"bench": bench, "clean": clean, "image": image, "plan": plan, "watch": watch}
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
        print("rock-vec: error: a command is required (bench, clean, image, plan, ps, serve-metrics, top, topology, watch)", file=sys.stderr)
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
    if args.command == "ps":
        return _ps()
    if args.command == "top":
        return _top(args)
    if args.command == "serve-metrics":
        return _serve_metrics(args)
    if args.command == "watch":
        return _watch(args, parser)
    if args.command == "topology":
        return _topology()
    if args.command == "plan":
        return _plan(args)
    return _clean(args)


def _image(args, parser) -> int:
    if args.image_command != "build":
        parser.commands["image"].print_usage(sys.stderr)
        print("rock-vec image: error: a subcommand is required (build)", file=sys.stderr)
        return EXIT_USAGE
    from ..backends import image

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
    from ..bench.suites import PEER_OURS, PEER_RUNNERS

    ours = [r for r in rows if r["runner"] in PEER_OURS and r.get("vs") is not None]
    if not ours:
        return ""
    peers = [p for p in PEER_RUNNERS if any(p in r["vs"] for r in ours)]
    head = ("workload", "envs", "runner", "steps/s", *(f"/{p}" for p in peers))
    lines = [(r["workload"], str(r["num_envs"]), r["runner"], f"{r['steps_per_s']:,.0f}",
              *(_fmt_ratio(r["vs"].get(p)) for p in peers)) for r in ours]
    table = _render(head, {1, *range(3, len(head))}, ours, lines)
    checks = [f"target: {r['workload']} x{r['num_envs']} {r['runner']} over {v['over']}: "
              + ("not measured" if v["ratio"] is None else f"{v['ratio']:.2f}x")
              + f" (>= {v['least']:.2f}: " + ("?" if v["met"] is None else "met" if v["met"] else "missed") + ")"
              for r in ours for v in r.get("versus", [])]
    return "\n".join([table, *checks])


def _progress_lines(line: str) -> None:
    if line:
        print(line, file=sys.stderr, flush=True)


class _ProgressBar:
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


GYM_ONLY = ("workloads", "envs", "runners", "batch_size", "sweep")
#: Of those, what --peers takes too (its groups are --workloads x --envs).
PEERS_TOO = ("workloads", "envs", "sweep")


def _check_gym_suite(workloads: Sequence[str], env_counts: Sequence[int], runners: Sequence[str],
                     batch_size: int | None) -> None:
    """Raises ValueError (a usage error) on a combination the gym suite cannot run."""
    from ..bench import suites as bench

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


def _suites(args) -> list[str]:
    """The suites to run, in order; ``--peers`` is the ``peers`` suite."""
    suites = list(args.suite or ([] if args.peers else ["gym"]))
    return suites + ["peers"] if args.peers else suites


def _bench_usage_error(args) -> str | None:
    """What is wrong with a ``bench`` command line that argparse let through, or None."""
    from ..bench import suites as bench

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
    from ..bench import suites as bench

    suites = _suites(args)
    settings = _settings(args, bench)
    workloads, env_counts, runners = settings["workloads"], settings["env_counts"], settings["runners"]
    repeats, seconds = settings["repeats"], settings["seconds"]
    sweep = args.sweep  # --quick never sweeps unless asked
    layouts = bench.SWEEP_LAYOUTS if sweep else [None]

    peer_groups = bench.peer_groups(workloads, env_counts, layouts) if "peers" in suites else []

    def runners_of(suite: str) -> list[str]:
        if suite == "gym":
            return runners
        groups = peer_groups if suite == "peers" else bench.SUITES[suite].groups
        return list(dict.fromkeys(r for g in groups for r in g.runners))

    used = {r for suite in suites for r in runners_of(suite)}
    extra = [m for m in ("stable_baselines3", "envpool", "pufferlib", "ray")
             if any((bench.RUNNER_SPECS[r].requires or "").split(".")[0] == m for r in used)]
    print(machine_line(extra))
    rows_received = ", or rows received for async runners" if any(bench.RUNNER_SPECS[r].batched for r in used) else ""
    print(f"medians of {repeats} interleaved runs of {seconds:g} s each; steps/s counts env steps "
          f"(batch steps x envs{rows_received}); vs_X = this row / X's steps/s"
          + ("; * best rock_vec layout" if sweep else ""))
    sys.stdout.flush()

    progress = _ProgressBar(sys.stderr) if sys.stderr.isatty() else _progress_lines

    skipped = {r: bench.unavailable(r) for r in bench.RUNNER_SPECS if r in used and bench.unavailable(r)}
    results: list[dict] = []
    train_loops: dict = {}  # the train suite's gap sweep and PPO loop
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
            elif suite == "peers":
                rows = bench.run_groups(peer_groups, repeats, seconds, progress=progress)
                for r in rows:
                    r["suite"] = "peers"
                print("every peer: vs_peer over gym_sync; then rock_vec's ratio over each peer at its fastest layout")
                table = "\n\n".join(t for t in (format_peer_table(rows), format_versus_table(rows)) if t)
            else:
                spec = bench.SUITES[suite]
                # First, while torch still has its default thread count (the groups' policies keep to one).
                loops = _train_loops(repeats, seconds, progress) if suite == "train" else None
                rows = bench.run_preset(suite, repeats, seconds, progress=progress)
                print(spec.description)
                print("vs_peer: over " + "; ".join(f"{g.peer} ({g.label()})" for g in spec.groups))
                table = format_peer_table(rows)
                if suite == "docker" and not bench.unavailable("rock_vec_docker"):
                    for n in bench.STARTUP_SIZES:
                        took = bench.container_startup(n)
                        target = f" (target <= 3 s: {'met' if took <= 3 else 'missed'})" if n == 16 else ""
                        table += f"\n{n} containers ready in {took:.2f} s{target}"
                for group in spec.groups:
                    if bench.group_unavailable(group):
                        table += f"\nnote: skipped {bench.group_unavailable(group)}"
                    elif group.policy == "mlp":  # a seeded, sampling policy: every vector runner must agree
                        same = bench.same_results(group)
                        table += (f"\n{group.label()}: same observations, rewards and flags as {group.peer} over "
                                  f"200 steps: {'yes' if same else 'NO'}")
                if loops is not None:
                    table += "".join(f"\n\n{t}" for t in loops.pop("tables") if t)
                    train_loops.update(loops)
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


def _train_loops(repeats: int, seconds: float, progress) -> dict:
    """The train suite's loops with a learner between steps (``rock_vec.bench.train_loops``):
    {"gap_sweep": rows, "ppo": rows, "tables": [text, ...]}. Each sweep
    point measures for half of ``seconds``; the PPO loop runs 8 iterations
    (fewer for runs under a second)."""
    from ..bench import train_loops as loops

    sweep = loops.run_sweep(repeats=repeats, seconds=seconds / 2, progress=progress)
    ppo = loops.run_ppo(iterations=max(1, min(8, int(seconds * 8))), repeats=repeats, progress=progress)
    progress("")
    why = loops._import_error("torch")
    notes = [f"note: skipped the mlp gap sweep and the PPO loop: {why}"] if why else []
    return {"gap_sweep": sweep, "ppo": ppo, "tables": [loops.format_sweep(sweep), loops.format_ppo(ppo), *notes]}


# ---------------------------------------------------------------- clean


def _topology(root: str = "/sys") -> int:
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


def _plan(args, root: str = "/sys") -> int:
    from ..placement import plan as placement, topology

    gpu = int(args.gpu) if args.gpu is not None and args.gpu.isdigit() else args.gpu
    try:
        cpus = None if args.cpus is None else topology.parse_cpulist(args.cpus)
        result = placement.plan(topology.read(root), args.workers, gpu, args.learner_cores, args.strict, cpus)
    except ValueError as exc:
        print(f"rock-vec plan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.describe())
    return EXIT_OK


def _ps() -> int:
    import time

    from ..segment import registry
    from ..segment.processes import pid_alive

    pools = registry.entries()
    if not pools:
        print("no rock_vec pools running")
        return EXIT_OK
    for p in pools:
        age = time.time() - p.get("started", time.time())
        state = "STALE (learner gone; rock-vec clean removes it)" if p["stale"] else f"up {age:.0f} s"
        print(f"pool {p['pool']}  learner {p['learner_pid']}  backend {p['backend']}  {p['num_envs']} envs  {state}")
        print(f"  {p['split']}")
        counters = {} if p["stale"] else _counters_of(p)
        lo, hi = p.get("learner_envs", [0, 0])
        if hi > lo:
            print(f"  learner    pid {p['learner_pid']:<8} envs {lo}..{hi - 1}")
        for w in p["workers"]:
            lo, hi = w["envs"]
            where = f"  {w['where']}" if w.get("where") else ""
            c = counters.get(w["index"])
            if c is None:
                state = "" if pid_alive(w["pid"]) else "  (gone)"
            else:
                ended = f" ({_exit(c)})" if c.state in ("exited", "dead") else ""
                state = f"  {c.state}{ended}, {c.env_steps:,} steps, {c.restarts} restarts, {c.errors} errors"
            print(f"  worker {w['index']:<3} pid {w['pid']:<8} envs {lo}..{hi - 1}{where}{state}")
            if c is not None and c.last_error:
                print(f"    last error: {c.last_error}")
    return EXIT_OK


def _counters_of(entry: dict) -> dict:
    """Each worker's counters (``rock_vec.observe.monitor``), or {} when the pool cannot be read."""
    from ..observe import monitor

    snap = monitor.read(entry)
    return {} if snap is None else {w.index: w for w in snap.workers}


def _top(args) -> int:
    import time

    from ..observe import monitor

    try:
        from rich.console import Console, Group
        from rich.live import Live
        from rich import box
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        print("rock-vec top: needs rich: pip install 'rock-vec[monitor]'", file=sys.stderr)
        return EXIT_FAILED
    if not args.interval > 0:
        print(f"rock-vec top: error: --interval must be > 0, got {args.interval}", file=sys.stderr)
        return EXIT_USAGE
    try:
        entry = monitor.pool_entry(args.pool)
        watch = monitor.PoolMonitor(entry)
    except (ValueError, PermissionError) as exc:
        print(f"rock-vec top: {exc}", file=sys.stderr)
        return EXIT_FAILED
    returns: list[float] = []  # of the episodes seen finishing, newest last

    def view(before, after):
        rates = monitor.rates(before, after)
        steps_s, step_us = monitor.learner_rate(before, after)
        finished, new_returns = monitor.finished_since(before, after)
        returns.extend(float(r) for r in new_returns)
        del returns[:-60]
        heading = Text(f"pool {entry['pool']}  learner {entry['learner_pid']}  backend {entry['backend']}  "
                       f"{entry['num_envs']} envs  ({entry['split']})")
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        # Narrow enough for 80 columns: wait = share of time waiting for commands,
        # beat = age of the host's heartbeat.
        for name, right in (("host", False), ("pid", True), ("envs", False), ("state", False), ("steps/s", True),
                            ("us/step", True), ("wait", True), ("restarts", True), ("errors", True), ("beat", True)):
            table.add_column(name, justify="right" if right else "left")
        lo, hi = entry.get("learner_envs", [0, 0])
        if hi > lo:
            table.add_row("learner", str(entry["learner_pid"]), f"{lo}..{hi - 1}", "-", f"{steps_s:,.0f}",
                          _num(step_us), "-", "-", "-", f"{after.learner_heartbeat_age_s:.1f} s")
        for r in rates:
            c = r.counters
            ended = f" ({_exit(c)})" if c.state in ("exited", "dead") else ""
            table.add_row(f"w{c.index}", str(c.pid), f"{c.envs[0]}..{c.envs[1] - 1}", c.state + ended,
                          f"{r.steps_per_s:,.0f}", _num(r.step_us), f"{r.wait_share:.0%}", str(c.restarts),
                          str(c.errors), f"{c.heartbeat_age_s:.1f} s")
        total = steps_s + sum(r.steps_per_s for r in rates)
        episodes = int(after.episodes.sum())
        lines = [f"total {total:,.0f} env steps/s   episodes {episodes:,} (+{finished} in {args.interval:g} s)"]
        if returns:
            lines.append(f"returns of the last {len(returns)} episodes seen: {_spark(returns)}  "
                         f"min {min(returns):.1f}  mean {sum(returns) / len(returns):.1f}  max {max(returns):.1f}")
        for r in rates:  # a worker's own words: printed as text, never as markup
            if r.counters.last_error:
                lines.append(Text(f"worker {r.counters.index} last error: {r.counters.last_error}"))
        return Group(heading, table, *lines)

    console = Console()
    if not console.is_terminal:  # piped: rich's default 80 columns would fold the table
        console = Console(width=120)
    try:
        before = watch.snapshot()
        time.sleep(args.interval)
        after = watch.snapshot()
        if args.once:
            console.print(view(before, after))
            return EXIT_OK
        with Live(view(before, after), console=console, auto_refresh=False) as live:
            while True:
                before = after
                time.sleep(args.interval)
                after = watch.snapshot()
                live.update(view(before, after), refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        watch.close()


def _watch(args, parser) -> int:
    import os
    import time

    from ..observe import monitor, tiles
    from ..observe.watch import FrameWatcher

    def usage(problem: str) -> int:
        parser.commands["watch"].print_usage(sys.stderr)
        print(f"rock-vec watch: error: {problem}", file=sys.stderr)
        return EXIT_USAGE

    kinds = (".gif", ".png", ".mp4")
    if not args.out and not args.live:
        return usage("say where the frames go: --out FILE (.gif, .png, .mp4) or --live")
    if args.out and not args.out.lower().endswith(kinds):
        return usage(f"--out {args.out}: write a .gif, .png or .mp4")
    try:
        write = _frame_writer(args.out, args.fps) if args.out else None
        show = _live_window() if args.live else None
    except RuntimeError as exc:
        print(f"rock-vec watch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        entry = monitor.pool_entry(args.pool)
        envs = args.envs if args.envs is not None else list(range(min(4, entry["num_envs"])))
        watcher = FrameWatcher(entry, envs)
    except (ValueError, PermissionError) as exc:
        print(f"rock-vec watch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    grids, said = 0, set()
    try:
        with watcher:
            print(f"watching envs {', '.join(map(str, envs))} of pool {entry['pool']} (learner "
                  f"{entry['learner_pid']}) for {args.seconds:g} s", file=sys.stderr)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                due = time.monotonic() + 1 / args.fps
                got = watcher.grab(timeout=min(5.0, max(0.5, end - time.monotonic())))
                for note in (g for g in got if isinstance(g, str)):
                    if note not in said:
                        said.add(note)
                        print(f"rock-vec watch: {note}", file=sys.stderr)
                if all(isinstance(g, str) for g in got):
                    if not os.path.exists(f"/proc/{entry['learner_pid']}"):
                        print("rock-vec watch: the learner has ended", file=sys.stderr)
                    break
                image = tiles.grid([None if isinstance(g, str) else g for g in got])
                grids += 1
                if write:
                    write(image)
                if show:
                    show(image)
                time.sleep(max(0.0, due - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        if write:
            write(None)
    if not grids:
        print("rock-vec watch: no frames", file=sys.stderr)
        return EXIT_FAILED
    if args.out:
        print(f"{grids} grid{'s' if grids != 1 else ''} of {len(envs)} env{'s' if len(envs) != 1 else ''} "
              f"written to {args.out}")
    return EXIT_OK


def _frame_writer(path: str, fps: float):
    """``write(image)`` for each grid, then ``write(None)`` to finish the file.

    Raises:
        RuntimeError: what writing ``path`` needs is missing (Pillow, ffmpeg).
    """
    if path.lower().endswith(".mp4"):
        import subprocess

        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError("an .mp4 needs ffmpeg on the PATH; write a .gif instead")
        state: dict = {}

        def write_mp4(image) -> None:
            if image is None:
                if "proc" in state:
                    state["proc"].stdin.close()
                    state["proc"].wait()
                return
            if "proc" not in state:  # the first grid fixes the size
                h, w = image.shape[:2]
                state["size"] = (h, w)
                state["proc"] = subprocess.Popen(
                    [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                     "-r", f"{fps:g}", "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p",
                     path], stdin=subprocess.PIPE)
            if image.shape[:2] == state["size"]:
                state["proc"].stdin.write(image.tobytes())

        return write_mp4
    try:
        from PIL import Image
    except ImportError:
        raise RuntimeError("a .gif or .png needs Pillow: pip install 'rock-vec[monitor]'") from None
    images: list = []
    last_only = path.lower().endswith(".png")

    def write_pil(image) -> None:
        if image is not None:
            if last_only:
                images.clear()
            images.append(Image.fromarray(image))
        elif images:
            images[0].save(path, save_all=not last_only, append_images=images[1:], duration=int(1000 / fps), loop=0)

    return write_pil


def _live_window():
    """``show(image)``: draws each grid in a matplotlib window.

    Raises:
        RuntimeError: no display, or no matplotlib.
    """
    import os

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise RuntimeError("--live needs a display (DISPLAY is not set): write the frames with --out FILE")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--live needs matplotlib: pip install 'rock-vec[bench]'") from None
    plt.ion()
    fig, ax = plt.subplots()
    ax.axis("off")
    shown: dict = {}

    def show(image) -> None:
        if "im" not in shown:
            shown["im"] = ax.imshow(image)
        else:
            shown["im"].set_data(image)
        fig.canvas.draw_idle()
        plt.pause(0.001)

    return show


def _serve_metrics(args) -> int:
    import time

    from ..observe import metrics

    try:
        server, _ = metrics.serve(args.port, args.addr)
    except (RuntimeError, OSError) as exc:
        print(f"rock-vec serve-metrics: {exc}", file=sys.stderr)
        return EXIT_FAILED
    host, port = server.server_address[:2]
    print(f"serving rock_vec metrics on http://{host}:{port}/metrics", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        server.shutdown()


def _num(value: float) -> str:
    return "-" if value != value else f"{value:,.1f}"


def _exit(c) -> str:
    return f"signal {c.exit_signal}" if c.exit_signal else f"exit {c.exit_code}"


def _spark(values: list[float]) -> str:
    """A one-line chart of ``values``: eight heights of block."""
    lo, hi = min(values), max(values)
    blocks = "▁▂▃▄▅▆▇█"
    if hi == lo:
        return blocks[3] * len(values)
    return "".join(blocks[min(7, int((v - lo) / (hi - lo) * 8))] for v in values)


def _clean(args) -> int:
    from ..segment import registry
    from ..segment.mapping import stale_segments, sweep_stale

    dry = args.dry_run
    segments = stale_segments() if dry else sweep_stale()
    for path in segments:
        print(f"{'would remove' if dry else 'removed'} {path}")
    containers, why = _stray_containers()
    for c in containers:
        if not dry:
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001 - auto-remove got there first
                pass
        print(f"{'would remove' if dry else 'removed'} container {c.name} (learner {c.labels.get('rock_vec.learner')})")
    listings = [e for e in registry.entries() if e["stale"]] if dry else registry.remove_stale()
    for e in listings:
        print(f"{'would remove' if dry else 'removed'} listing of pool {e['pool']} (learner {e['learner_pid']})")
    verb = "found (dry run: nothing removed)" if dry else "removed"
    print(f"{len(segments)} stale segment(s), {len(containers)} stray container(s), {len(listings)} stale "
          f"listing(s) {verb}" + (f"; containers not checked: {why}" if why else ""))
    return EXIT_OK


def _stray_containers() -> tuple[list, str | None]:
    """Containers of the docker backend whose learner (on this host) is gone,
    and why none could be looked for (no SDK, no engine), or None."""
    import socket

    from ..segment.processes import pid_alive

    try:
        import docker

        engine = docker.from_env(timeout=10)
        engine.ping()
    except ImportError:
        return [], "the docker SDK is not installed"
    except Exception as exc:  # noqa: BLE001 - no engine here: nothing of ours can run in it
        return [], f"no Docker engine answers ({type(exc).__name__})"
    host = socket.gethostname()
    stray = []
    for c in engine.containers.list(all=True, filters={"label": "rock_vec.learner"}, ignore_removed=True):
        if c.labels.get("rock_vec.host") == host and not pid_alive(int(c.labels["rock_vec.learner"])):
            stray.append(c)
    return stray, None

