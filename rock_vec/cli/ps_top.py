"""``rock-vec ps`` and ``rock-vec top``: this user's running pools, read
from outside and never changed. ``ps`` lists every pool from its listing
(``rock_vec.segment.registry``) with each worker's counters; ``top`` follows
one pool's counters live (``rock_vec.observe.monitor``), drawn with rich.

rock_vec's modules and rich are imported inside the functions that use
them, so that rich, which is optional, is needed by ``top`` alone, which
says so when it is missing.
"""

from __future__ import annotations

import sys
import time

from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def ps_command() -> int:
    """Prints this user's pools and their workers; returns the exit code."""
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


def top_command(args) -> int:
    """Shows one running pool's counters every ``args.interval`` seconds until interrupted (once with ``--once``)."""
    from ..observe import monitor

    try:
        from rich import box
        from rich.console import Console, Group
        from rich.live import Live
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


def _num(value: float) -> str:
    """A time per step, or "-" when there is none (NaN: no steps between the readings)."""
    return "-" if value != value else f"{value:,.1f}"


def _exit(c) -> str:
    """How a host that ended did: the signal that killed it, or its exit code."""
    return f"signal {c.exit_signal}" if c.exit_signal else f"exit {c.exit_code}"


def _spark(values: list[float]) -> str:
    """A one-line chart of ``values``: eight heights of block."""
    lo, hi = min(values), max(values)
    blocks = "▁▂▃▄▅▆▇█"
    if hi == lo:
        return blocks[3] * len(values)
    return "".join(blocks[min(7, int((v - lo) / (hi - lo) * 8))] for v in values)
