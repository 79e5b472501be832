"""Bounded memory (the peers' users see per-worker RSS grow over training until an OOM
kill shows up as EOFError): a small pool, flat over 10^6 steps."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[1] / "memory_probe.py"


def probe(*args):
    out = subprocess.run([sys.executable, str(PROBE), *map(str, args)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def share_of_gym_async(label, *layout):
    """rock_vec's proportional set size over gymnasium AsyncVectorEnv's, 64 CartPoles each."""
    ours, theirs = probe("rock_vec", 64, *layout), probe("gym_async", 64)
    ratio = ours["pss_mib"] / theirs["pss_mib"]
    print(f"{label} {ours['pss_mib']:.0f} MiB ({ours['processes']} processes), gymnasium AsyncVectorEnv "
          f"{theirs['pss_mib']:.0f} MiB ({theirs['processes']} processes), ratio {ratio:.2f}")
    return ratio


@pytest.mark.slow
def test_64_cartpoles_in_8_workers_take_about_a_third_of_gymnasium_async_memory():
    # 8 workers of 8 envs. Measured here on 2026-12-01: 99-100 MiB against
    # 297-302 MiB (0.33); on 2026-12-08 96 against 294 MiB (0.33), 10 processes; the code before the exact-types work measured 98 MiB
    # run by pytest, 103 MiB run directly. What is left is CPython's
    # copy-on-write of shared pages in each forked worker (~4 MiB each, the
    # same in gymnasium's own workers). The 0.30 goal (default layout) is the
    # speed issue's.
    assert share_of_gym_async("rock_vec", 8) <= 0.34


@pytest.mark.slow
def test_the_default_pool_of_64_cartpoles_takes_under_a_quarter_of_gymnasium_async_memory():
    # The default split on 2 CPUs: the learner steps 32, one worker 32 (3 processes with the fork
    # server). Measured here on 2026-12-08: 63 MiB against 296 MiB (0.21). (Until that day the probe
    # counted only the learner's descendants, and the fork server detaches: 31 MiB, 1 process.)
    assert share_of_gym_async("rock_vec default") <= 0.25


@pytest.mark.slow
def test_every_process_stays_flat_over_a_million_steps():
    result = probe("rock_vec", 16, 8, 1_000_000)
    assert result["steps"] >= 1_000_000 - 16
    growth = {pid: result["uss_after"][pid] - before for pid, before in result["uss_before"].items()}
    print("USS growth per process (MiB):", {pid: round(g, 2) for pid, g in growth.items()})
    assert max(growth.values()) < 2.0, growth


@pytest.mark.slow
def test_copy_true_images_hold_at_most_three_batches_more_than_copy_false():
    """Lent batches (rock_vec.engine.handouts) live in the segment's generations: a loop that holds
    its last batch uses two of them; the bound is the generations' count less one."""
    lent, views = probe("images", 16), probe("images_nocopy", 16)
    extra = (lent["pss_mib"] - views["pss_mib"]) / lent["batch_mib"]
    print(f"copy=True {lent['pss_mib']:.0f} MiB, copy=False {views['pss_mib']:.0f} MiB: {extra:.2f} batches "
          f"of {lent['batch_mib']:.1f} MiB more")
    assert extra <= 3.0
