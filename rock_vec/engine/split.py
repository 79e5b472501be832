"""How a pool splits its envs between the learner's process and workers.

A batch of cheap steps (CartPole: 5-10 us each here) is shorter than two
cross-process wake-ups (~40 us each here), and on a machine with few cores
a learner plus one worker per core oversubscribes it. So by default the
learner steps a share of the envs itself while one worker per remaining CPU
steps the rest, each side spinning on its own CPU: a batch then costs about
the larger share plus a spin hand-off, not SyncVectorEnv's sum of every
step, whatever the step cost.

The learner's share is the workers' share or one env less (it also checks
and writes the actions, and reads the results). That balance holds for any
step cost: the time a worker needs to see a command (a few us) moves it by
less than one env unless steps are shorter than a microsecond. So no env is
stepped to measure anything: the probe env the pool builds to read the
spaces is closed untouched, as gymnasium closes its own (stepping it would
run an env's side effects, a video recorder's file, a step that blocks).

Envs stepped in the learner's process are the learner's, as in
SyncVectorEnv: a crash there (a segfault in the env) ends the learner, and a
hang hangs it. ``learner_envs=0`` keeps every env in a worker process with
every isolation promise; giving ``envs_per_worker`` or ``num_workers``
without ``learner_envs`` does too.
"""

from __future__ import annotations

import dataclasses

from .options import check_int

#: The host id of the learner's share: envs the learner steps itself. Worker
#: indices are 0.. , so it is no worker's.
LOCAL = -1


@dataclasses.dataclass(frozen=True)
class Split:
    """Where a pool's envs step.

    Attributes:
        learner_envs: envs 0..learner_envs-1 step in the learner's process.
        num_workers: worker processes; they host the other envs in
            contiguous, nearly equal ranges.
        num_envs: all of them.
        why: how the split was chosen, for people.
    """

    learner_envs: int
    num_workers: int
    num_envs: int
    why: str = ""

    def __str__(self) -> str:
        remote = self.num_envs - self.learner_envs
        per = remote / self.num_workers if self.num_workers else 0
        each = f"{per:.0f} env{'s' if per != 1 else ''}" if per == int(per) else f"~{per:.1f} envs"
        workers = f"{self.num_workers} worker{'s' if self.num_workers != 1 else ''} x {each}"
        share = f"learner {self.learner_envs} + " if self.learner_envs else ""
        return f"{share}{workers} ({self.why})"


def choose(num_envs: int, cpus: int, *, envs_per_worker: int | None = None, num_workers: int | None = None,
           learner_envs: int | None = None, max_concurrency: int | None = None,
           all_in_workers: str | None = None) -> Split:
    """The split of ``num_envs`` envs on ``cpus`` usable CPUs.

    Given ``envs_per_worker``, ``num_workers`` or ``learner_envs``, those
    rule (``learner_envs`` defaults to 0 then). Otherwise one worker per
    CPU but one, and the learner takes an equal share, rounded down (see the
    module docstring); ``all_in_workers`` (a reason) keeps every env in a
    worker, one worker per CPU.

    Raises:
        ValueError: on values that are not positive ints (``learner_envs``:
            non-negative, below ``num_envs``) or a layout that cannot host
            ``num_envs``.
    """
    check_int("envs_per_worker", envs_per_worker)
    check_int("num_workers", num_workers)
    check_int("learner_envs", learner_envs, 0, below=("num_envs", num_envs), why="at least one env steps in a worker")
    if envs_per_worker is not None or num_workers is not None or learner_envs is not None:
        local = int(learner_envs or 0)
        remote = num_envs - local
        if num_workers is None:
            num_workers = (min(remote, max(1, cpus - (1 if local else 0))) if envs_per_worker is None
                           else -(-remote // envs_per_worker))
        elif envs_per_worker is not None and num_workers * envs_per_worker < remote:
            raise ValueError(f"num_workers={num_workers} x envs_per_worker={envs_per_worker} cannot host "
                             f"{remote} envs")
        return Split(local, _cap(num_workers, remote, max_concurrency), num_envs, "as given")
    if all_in_workers or num_envs < 2:
        why = all_in_workers or "a single env"
        return Split(0, _cap(min(num_envs, cpus), num_envs, max_concurrency), num_envs,
                     f"every env in a worker, one per CPU: {why}")
    workers = _cap(max(1, cpus - 1), num_envs - 1, max_concurrency)
    local = num_envs // (workers + 1) if cpus > 1 else num_envs - workers
    why = (f"the learner steps a share on its CPU, {workers} worker{'s' if workers > 1 else ''} on the "
           f"other{'s' if workers > 1 else ''}" if cpus > 1 else "one CPU: the learner steps all but one env")
    return Split(local, workers, num_envs, why)


def _cap(workers: int, envs: int, max_concurrency: int | None) -> int:
    if max_concurrency is not None:
        workers = min(workers, max_concurrency)
    return max(1, min(workers, envs))


def ranges(split: Split) -> list[tuple[int, int]]:
    """The workers' env ranges: contiguous, nearly equal, after the learner's."""
    lo, n, w = split.learner_envs, split.num_envs - split.learner_envs, split.num_workers
    bounds = [lo + round(k * n / w) for k in range(w + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(w)]

