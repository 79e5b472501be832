"""A worker's rhythm (rock_vec.worker.rhythm): the plan of each wait from the
learner's measured gaps, and what it buys in a real pool: a learner that
comes back on a steady rhythm finds its worker awake, without paying a wake."""

import time

import numpy as np
import pytest
from busy_threads import Burner
from sample_envs import SpaceEnv

import rock_vec
from rock_vec.engine import crowding, pool
from rock_vec.placement.cpus import usable_cpus
from rock_vec.worker import rhythm
from rock_vec.worker.rhythm import MARGIN_NS, WARMUP, WINDOW, Rhythm

US = 1_000
MS = 1_000_000
LONG = rhythm.SPIN_THROUGH_NS + 5 * MS  # a gap too long to spin through


def steady(r: Rhythm, gap_ns: int, late_ns: int = -1, n: int = WINDOW, stolen_ns: int = 0) -> Rhythm:
    for _ in range(n):
        r.learn(gap_ns, late_ns, stolen_ns)
    return r


def test_no_budget_means_no_spin_and_no_doze():
    assert steady(Rhythm(0), 1 * MS).plan() == (0, 0)


def test_until_it_has_seen_a_few_gaps_a_worker_spins_its_budget():
    r = Rhythm(200 * US)
    for _ in range(WARMUP):
        assert r.plan() == (0, 200 * US)
        r.learn(1 * MS)
    assert r.plan() != (0, 200 * US)


def test_without_dozing_the_plan_is_the_budget_whatever_the_gaps():
    assert steady(Rhythm(1 * MS, dozes=False), 3 * MS).plan() == (0, 1 * MS)


def test_while_its_cpu_is_not_wanted_a_worker_spins_through_the_gap():
    assert steady(Rhythm(200 * US), 3 * MS).plan() == (0, 3 * MS + MARGIN_NS)


def test_a_spin_that_lost_an_eighth_of_its_gap_dozes_until_just_before_the_next_and_spins_just_past_it():
    late = 40 * US
    r = steady(Rhythm(200 * US), 1 * MS, late)
    r.learn(1 * MS, late, stolen_ns=200 * US)  # the learner's torch threads took the CPU
    doze, spin = r.plan()
    assert doze == 1 * MS - late - MARGIN_NS  # wakes early by the timer's lateness and a margin
    assert doze + spin == 1 * MS + MARGIN_NS  # and spins until just past the gap


def test_a_blip_is_no_contention():
    r = steady(Rhythm(200 * US), 1 * MS)
    r.learn(1 * MS, stolen_ns=60 * US)  # a heartbeat thread, the host's own work
    assert r.plan() == (0, 1 * MS + MARGIN_NS)


def test_after_a_backoff_without_contention_it_spins_through_again():
    r = steady(Rhythm(200 * US), 1 * MS, 30 * US)
    r.learn(1 * MS, 30 * US, stolen_ns=500 * US)
    for _ in range(rhythm.BACKOFF):
        assert r.plan()[0] > 0
        r.learn(1 * MS, 30 * US)
    assert r.plan() == (0, 1 * MS + MARGIN_NS)


def test_gaps_too_long_to_spin_through_are_dozed_through():
    doze, spin = steady(Rhythm(200 * US), LONG, 30 * US).plan()
    assert doze == LONG - 30 * US - MARGIN_NS and doze + spin == LONG + MARGIN_NS


def test_gaps_too_short_for_a_timer_are_spun_through_even_when_contended():
    doze, spin = steady(Rhythm(200 * US), 40 * US, stolen_ns=20 * US).plan()
    assert doze == 0 and spin == 40 * US + MARGIN_NS


def test_a_jittery_gap_spins_over_all_but_its_tails():
    r = Rhythm(5 * MS)
    for gap in np.linspace(LONG, LONG + 4 * MS, WINDOW).astype(int):
        r.learn(int(gap))
    doze, spin = r.plan()
    soon, late = rhythm._quantile(sorted(r.gaps), 0.1), rhythm._quantile(sorted(r.gaps), 0.9)
    assert doze == soon - MARGIN_NS and doze + spin == late + MARGIN_NS


def test_the_spin_never_exceeds_the_budget_past_the_lead():
    r = Rhythm(100 * US)
    for gap in np.linspace(LONG, 10 * LONG, WINDOW).astype(int):
        r.learn(int(gap))
    doze, spin = r.plan()
    assert doze > 0 and spin == 100 * US + r.lead_ns()


def test_one_long_gap_among_steady_ones_leaves_the_plan_alone():
    r = steady(Rhythm(200 * US), 500 * US, 30 * US)
    before = r.plan()
    r.learn(400 * MS)  # PPO's update between two rollouts
    assert r.plan() == before


def test_the_plan_follows_a_new_rhythm_within_a_window():
    r = steady(Rhythm(200 * US), LONG, 30 * US)
    assert r.plan()[0] > rhythm.SPIN_THROUGH_NS
    steady(r, 10 * US)  # an evaluation phase steps back to back
    assert r.plan() == (0, 10 * US + MARGIN_NS)
    steady(r, LONG, 30 * US)  # and back to training
    assert r.plan()[0] > rhythm.SPIN_THROUGH_NS


def test_a_timer_that_wakes_later_ends_the_doze_earlier():
    prompt = steady(Rhythm(200 * US), LONG, 10 * US).plan()[0]
    sluggish = steady(Rhythm(200 * US), LONG, 150 * US).plan()[0]
    assert prompt - sluggish == 140 * US


def test_a_garbage_stamp_plans_no_doze_longer_than_an_idle_learner():
    r = steady(Rhythm(200 * US), 2**64 - 1)  # a hostile env wrote over the slot's cmd_ns
    doze, spin = r.plan()
    assert 0 < doze <= rhythm.MAX_GAP_NS and spin <= 200 * US + r.lead_ns()


def test_negative_gaps_count_as_none():
    # The doorbell's stamp can precede the worker's own idle stamp by a hair.
    r = steady(Rhythm(200 * US), -5 * US)
    assert min(r.gaps) == 0


def _busy(ns: int) -> None:
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


def _wakes_in_rhythm(policy: str, gap_ns: int, steps: int) -> tuple[int, int]:
    """(steps, wakes the learner paid) of a learner away gap_ns before each step."""
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 2, num_workers=1, learner_envs=0, wait_policy=policy)
    try:
        envs.reset(seed=0)
        actions = envs.action_space.sample()
        slot = envs.unwrapped._pool.seg.slot(0)
        for _ in range(2 * WINDOW):  # the worker learns the rhythm
            _busy(gap_ns)
            envs.step(actions)
        before = slot.woken
        for _ in range(steps):
            _busy(gap_ns)
            envs.step(actions)
        return steps, slot.woken - before
    finally:
        envs.close()


def test_a_learner_on_a_steady_rhythm_finds_its_worker_awake():
    if pool.spin_budgets("auto", 1, usable_cpus())[1] == 0:
        pytest.skip("this machine has no CPU for a worker to spin on")
    steps, woken = _wakes_in_rhythm("auto", 1_000_000, 300)
    blocking_steps, blocking_woken = _wakes_in_rhythm("block", 1_000_000, 100)
    # A worker that never spins is woken for nearly every command (not one
    # that comes before it is back in its futex).
    assert blocking_woken > 0.8 * blocking_steps
    assert woken < steps // 2, f"the worker was asleep for {woken} of {steps} commands"


def test_while_the_learner_is_crowded_a_worker_sleeps_until_woken():
    # Crowded: the learner's own threads (torch's) keep the CPUs busy (rock_vec.engine.crowding).
    assert steady(Rhythm(200 * US), 1 * MS).plan(crowded=True) == (0, 0)
    assert steady(Rhythm(200 * US), 1 * MS).plan(crowded=False) == (0, 1 * MS + MARGIN_NS)


def test_while_the_learners_own_threads_keep_a_cpu_busy_its_worker_sleeps_and_spins_again_after():
    if pool.spin_budgets("auto", 1, usable_cpus())[1] == 0:
        pytest.skip("this machine has no CPU for a worker to spin on")
    envs = rock_vec.AsyncVectorEnv([lambda: SpaceEnv()] * 2, num_workers=1, learner_envs=0)
    try:
        envs.reset(seed=0)
        actions = envs.action_space.sample()
        p = envs.unwrapped._pool
        slot = p.seg.slot(0)

        def run(steps: int) -> int:
            before = slot.woken
            for _ in range(steps):
                _busy(200_000)
                envs.step(actions)
            return slot.woken - before

        with Burner():
            run(8)
            assert p.seg.header.learner_crowded == 1 and p.spin_ns == 0
            woken = run(100)
        assert woken > 80, f"crowded, the worker was asleep for only {woken} of 100 commands"
        run(crowding.HOLD + crowding.EVERY + 2)
        assert p.seg.header.learner_crowded == 0 and p.spin_ns == p.spin_budget_ns
        woken = run(300)
        assert woken < 150, f"no longer crowded, the worker was asleep for {woken} of 300 commands"
    finally:
        envs.close()
