"""The ``rock-vec`` command: its argument parser and the dispatch to the
module of each command (the console script is ``rock_vec.cli.main:main``).

    rock-vec bench --quick                 # about half a minute
    rock-vec bench --workloads cartpole --envs 4,16,64 --sweep --json out.json
    rock-vec bench --suite async,sb3,envpool --repeats 5 --seconds 3
    rock-vec clean --dry-run
    rock-vec image build --env-package ale-py    # the docker backend's worker image

Exit codes: 0 done, 1 failed, 2 usage error.

Each command runs in a module of its own (``bench_command``, ``clean``,
``image``, ``ps_top``, ``metrics``, ``topology``, ``watch``); this one
holds only every command's options and help, since argparse needs every
subparser to parse any command line. Those modules import rock_vec's
heavier parts and the optional packages inside their functions, so
importing them all here costs little.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .bench_command import bench_command, bench_usage_error
from .clean import clean_command
from .exits import EXIT_USAGE
from .image import image_command
from .metrics import serve_metrics_command
from .ps_top import ps_command, top_command
from .topology import plan_command, topology_command
from .watch import watch_command


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
    """An argparse type: one ``kind`` value, greater than 0."""
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
    """Every command's options and help (``parser.commands``: the subparsers whose usage the commands print)."""
    # When a command line is parsed, not when this module is imported: bench's help and choices list these.
    from ..bench.runners import OVERSUBSCRIBED, RUNNER_SPECS
    from ..bench.suites import GYM_WORKLOADS, PEER_RUNNERS, RUNNERS, SUITES
    from ..bench.workloads import WORKLOADS

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
        problem = bench_usage_error(args)
        if problem:
            parser.commands["bench"].print_usage(sys.stderr)
            print(f"rock-vec bench: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        return bench_command(args)
    if args.command == "image":
        return image_command(args, parser)
    if args.command == "ps":
        return ps_command()
    if args.command == "top":
        return top_command(args)
    if args.command == "serve-metrics":
        return serve_metrics_command(args)
    if args.command == "watch":
        return watch_command(args, parser)
    if args.command == "topology":
        return topology_command()
    if args.command == "plan":
        return plan_command(args)
    return clean_command(args)
