"""Whether the learner's own other threads keep CPUs busy: then nobody on
the step path may spin, and the workers keep off the learner's CPU.

torch at its default thread count runs an OpenMP thread per core, and
after every parallel region each of them spins (libgomp: 300,000 pause
loops, milliseconds) waiting for the next one before it sleeps. A CleanRL
policy runs such a region at every step (``Categorical.entropy``'s clamp
already does), so through a whole rollout those threads hold the CPUs the
workers step on. A waiter that spins there loses twice: each yield hands a
hog a whole scheduler slice, and its spin takes the CPU from torch's own
threads when they do work. A waiter asleep in a futex, once woken,
preempts a hog at once (it has its lag to spend). Measured on 2 CPUs, a
CleanRL-style PPO loop at torch's default 2 threads: 0.33x SyncVectorEnv's
steps/s with spinning waiters, 0.8x with sleeping ones; at 1 thread,
spinning waiters are the faster (0.6x the sleeping ones' step time).

The learner sees such threads in its own CPU clocks: the process's CPU time
grows faster than the calling thread's. The process's clock sums every
thread's (3-5 us a read here, more while another thread runs), so the
clocks are read at one command in EVERY, no thread list.
"""

from __future__ import annotations

import os
import time

#: Other threads busy for more than this share of the time between two
#: commands crowd the CPUs (the learner's heartbeat thread takes ~0.01%).
CROWDED_SHARE = 1 / 8
#: Commands the pool stays crowded after the last crowded one: a rhythm
#: with a parallel region every few steps stays crowded, and one that ends
#: (torch set to one thread, an evaluation without torch) is left this fast.
HOLD = 64
#: The clocks are read at one command in this many (the share is over the time between reads).
EVERY = 8


class Crowding:
    """Told of each command; at one in ``EVERY`` reads the CPU time the
    learner's other threads took since the previous reading."""

    def __init__(self):
        self.wall, self.process, self.thread = time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns()
        self.left = 0  # commands still crowded
        self.count = 0  # commands since the clocks were read

    def sample(self) -> bool:
        """Whether the CPUs are crowded now: the last reading (one in
        ``EVERY`` commands) or one within the last ``HOLD`` commands was."""
        self.count += 1
        if self.count < EVERY:
            self.left = max(0, self.left - 1)
            return self.left > 0
        self.count = 0
        wall, process, thread = time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns()
        others = (process - self.process) - (thread - self.thread)
        if others > CROWDED_SHARE * (wall - self.wall):
            self.left = HOLD
        elif self.left:
            self.left -= 1
        self.wall, self.process, self.thread = wall, process, thread
        return self.left > 0


class KeepOff:
    """While the CPUs are crowded, the workers keep off the learner's CPU.

    A worker woken then finds no idle CPU: torch's threads spin on the
    others. The scheduler then often puts it on its waker's CPU, where it
    preempts the learner for its whole share of the step while the other
    CPU spins for nothing (8 CartPoles, torch's 2 threads on 2 CPUs: the
    learner's dispatch took 166-222 us median). Kept off, it lands where an
    OpenMP thread spins and preempts that one instead (dispatch 19-21 us). The
    learner's CPU rarely changes (once or twice in a PPO run), so the
    affinity is set only when it does, with one ``sched_setaffinity`` per
    worker; back to each worker's own CPUs once the crowd is gone.
    """

    def __init__(self):
        self.cpu = -1  # the CPU the workers are kept off; -1: none
        self.pids: list[int] = []  # the workers it was applied to
        self.own: dict[int, set[int]] = {}  # pid -> its CPUs before

    def follow(self, pids: list[int], cpu: int) -> None:
        """Keeps ``pids`` off ``cpu`` (-1: gives them their own CPUs back);
        does nothing while neither changed."""
        if cpu == self.cpu and pids == self.pids:
            return
        self.cpu, self.pids = cpu, list(pids)
        for pid in pids:
            try:
                own = self.own.setdefault(pid, os.sched_getaffinity(pid))
                cpus = own - {cpu}
                os.sched_setaffinity(pid, cpus or own)  # a worker pinned to that one CPU stays there
            except OSError:  # gone (its death comes back as a fault), or not this user's to move
                pass
