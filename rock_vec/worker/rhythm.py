"""When a worker's next command will come: its learner's rhythm.

A worker asleep in a futex costs the learner a wake each time it is needed:
a syscall, and on a virtual machine the wake of a halted vCPU, tens to
hundreds of microseconds while the learner's own envs are done and it
waits. On such machines a vCPU that halts and wakes every step also slows
the learner's vCPU beside it. A worker that spins through the learner's
policy forward, though, takes a CPU that forward may need. So each wait is
planned from what the worker measures:

- While no other thread wants its CPU, it spins through the learner's
  whole gap (up to SPIN_THROUGH_NS): the CPU was idle anyway. The spin
  yields at every clock read (``rv_yield``), so a thread that does want the
  CPU gets it at once, and the spin sees the time it lost.
- Once a spin lost an eighth of its gap to other threads (the learner's
  torch threads, a second pool), or when gaps are longer than that, it
  dozes on a timer through the part of the gap that is nearly sure to pass
  and spins from a little before the command is likely to come until a
  little after it should have come; past that it sleeps and the learner
  pays one wake. The timer itself wakes late (timer slack, a halted vCPU),
  so the doze ends early by as much as the timer has lately been late.
  After BACKOFF commands it tries spinning through again. (Sleeping until
  woken instead, measured here, made every step slower than this.)

A gap is measured from the learner's clock stamp at the doorbell
(``slot.cmd_ns``, CLOCK_MONOTONIC like ``rv_now_ns``) back to when the
worker finished its previous command. Recent gaps only: when the rhythm
changes (an evaluation phase, PPO's update between rollouts) the plan
follows within a window of commands; one long gap among short ones moves
neither of the quantiles the plan uses.
"""

from __future__ import annotations

from collections import deque

#: Gaps (and timer delays) remembered: the plan follows a new rhythm this fast.
WINDOW = 16
#: Gaps needed before dozing: until then the worker spins its whole budget.
WARMUP = 4
#: Added to both ends of the spin: the jitter of the learner's own clock reads and wake path.
MARGIN_NS = 20_000
#: The spin covers gaps from this quantile's mirror (0.1) to it, and the
#: doze ends as early as the timer was this late: 9 commands in 10 find the
#: worker spinning while the rhythm holds.
LATE_Q = 0.9
#: Gaps are counted up to this: any longer means the learner is idle. A
#: worker that another worker's env wrote over (a hostile env may write the
#: whole segment) must not plan a doze of centuries from a garbage stamp.
MAX_GAP_NS = 1_000_000_000
#: A doze shorter than this is not worth its timer: spin instead.
MIN_DOZE_NS = 30_000
#: The longest gap a worker spins through while no other thread wants its CPU.
SPIN_THROUGH_NS = 5_000_000
#: Commands a worker dozes after its spin lost time to other threads, before it spins through again.
BACKOFF = 64


def _quantile(ordered: list[int], q: float) -> int:
    """The q-quantile of ``ordered`` (sorted)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Rhythm:
    """Plans each wait of one worker as (doze_ns, spin_ns) for ``rv_worker_wait``.

    budget_ns is the most a dozing wait spins past the command's earliest
    expected time (0: never spin, so never doze either: the worker sleeps
    until woken). With ``dozes`` False the plan is the budget's spin alone,
    whatever the gaps (wait_policy 'spin')."""

    def __init__(self, budget_ns: int, dozes: bool = True):
        self.budget_ns, self.dozes = budget_ns, dozes
        self.gaps: deque[int] = deque(maxlen=WINDOW)
        self.delays: deque[int] = deque(maxlen=WINDOW)  # how late the doze timer woke the worker
        self.contended = 0  # commands left to doze since a spin lost time to other threads

    def learn(self, gap_ns: int, doze_late_ns: int = -1, stolen_ns: int = 0) -> None:
        """One wait's outcome: the gap before the command came, how late the
        doze's timer woke the worker (-1: no timer wake) and the time its
        spin lost to other threads."""
        gap = min(max(0, gap_ns), MAX_GAP_NS)
        self.gaps.append(gap)
        if doze_late_ns >= 0:
            self.delays.append(doze_late_ns)
        # A blip (a heartbeat thread, the host's own work) is no contention.
        self.contended = BACKOFF if stolen_ns * 8 > gap else max(0, self.contended - 1)

    def lead_ns(self) -> int:
        """How early a doze must end to be spinning in time."""
        return MARGIN_NS + (_quantile(sorted(self.delays), LATE_Q) if self.delays else 0)

    def plan(self, crowded: bool = False) -> tuple[int, int]:
        """The next wait. ``crowded``: the learner's own threads keep the
        CPUs busy (``rock_vec.engine.crowding``), so the worker sleeps until
        woken: a spin there would yield its CPU to them a slice at a time."""
        if self.budget_ns <= 0 or crowded:
            return 0, 0
        if not self.dozes or len(self.gaps) < WARMUP:
            return 0, self.budget_ns
        gaps = sorted(self.gaps)  # once per command: the plan is on the worker's step path
        soon, late = _quantile(gaps, 1 - LATE_Q), _quantile(gaps, LATE_Q)
        if not self.contended and late + MARGIN_NS <= SPIN_THROUGH_NS:
            return 0, late + MARGIN_NS
        lead = self.lead_ns()
        doze = soon - lead
        if doze < MIN_DOZE_NS:
            doze = 0
        return doze, min(self.budget_ns + lead, late + MARGIN_NS - doze)
