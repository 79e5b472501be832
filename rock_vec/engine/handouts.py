"""``copy=True``'s promise without the copy: observations lent out of the segment.

gymnasium's ``copy=True`` promises arrays that no later step changes; the
plain way to keep it copies every batch out of the segment, which at image
sizes costs more than the step. Instead the step arrays hold the
observations in ``GENERATIONS`` generations (a leading axis of ``obs<k>``),
and every command names the generation its hosts write in the segment's
``obs.gen`` word before it is dispatched.

A batch is *lent*: each leaf is a new array over its generation's bytes
whose base is the mapping itself (``Segment.array_at``), so every array a user
derives from it (a slice, ``np.asarray``, a torch tensor, a DLPack capsule)
refers to it, and a weak reference to it dies only when the user has let go
of all of them. A generation on loan is never written: the next command
writes the last results' generation when nobody holds it, else the first
free one (the usual loop, ``obs = envs.step(...)``, lets go of the previous
batch only as it assigns the next, so it alternates between two). A batch
is copied out instead only when lending it would leave no generation free
for the next command: a user who keeps every batch gets copies, as before,
and the segment holds at most ``GENERATIONS - 1`` batches more than
``copy=False``'s (tmpfs allocates a generation's pages only when first
written).

A masked reset leaves the other envs' observations as they were. Once a
batch was lent, the user may have changed it in place, so such a reset goes
to every host, and each writes its other envs' last observations again from
the envs' own objects, as SyncVectorEnv concatenates its ``_env_obs``.

Containers do not borrow: a container's worker can write into every
generation, and a container promises that it cannot change what the learner
already handed over, so under ``backend='docker'`` there is one generation and
every ``copy=True`` batch is copied.
"""

from __future__ import annotations

import weakref

from ..segment.layout import LeafIO, assemble

#: Generations of the observations when lending is on: a loop holds its last
#: batch while the next step writes another, and one must stay free for the
#: command after that (lending never takes the last free one); the fourth
#: lets a user hold one batch more (kept aside, an evaluation's first
#: observation) and still get views.
GENERATIONS = 4


class Handouts:
    """The observations of a pool's step arrays: which generation the next
    command writes, and each batch lent or copied out.

    Args:
        seg: the pool's segment (arrays ``obs<k>`` with a generation axis, and ``obs.gen``).
        space, leaves: the single observation space and its leaves.
        generations: the length of that axis (1: nothing is lent).
    """

    def __init__(self, seg, space, leaves, generations: int):
        self.seg = seg
        self.generations = [LeafIO(space, leaves, seg.arrays, "obs", g) for g in range(generations)]
        # Each fixed-layout leaf's (offset, shape, dtype) per generation: a lent array is made from them.
        self.places = [[(seg.offset_of(a), a.shape, a.dtype) if leaf.kind == "array" else None
                        for leaf, a in zip(leaves, io.arrays)] for io in self.generations]
        self.word = seg.arrays["obs.gen"]
        self.lends = generations > 1
        self.loans: list[list[weakref.ref]] = [[] for _ in range(generations)]
        self.results = 0  # the generation holding the last results
        self.lent = False  # whether they were lent (and so may have been changed by the user)
        self.copied = self.borrowed = 0  # batches copied out / lent, for tests and monitors

    def free(self, g: int) -> bool:
        """Nobody holds an array lent from generation ``g``."""
        loans = self.loans[g]
        if loans:
            loans[:] = [ref for ref in loans if ref() is not None]
        return not loans

    def aim(self) -> int:
        """Names, before a command is dispatched, the generation it writes
        (and returns it): the last results' when free, else another free one
        (lending always leaves one). A call writes only what a restarted
        worker writes, into a generation nobody holds; a step or a reset
        then ``hold``s its results there."""
        g = self.results if self.free(self.results) else next(g for g in range(len(self.loans)) if self.free(g))
        self.word[0] = g
        return g

    def hold(self, g: int) -> None:
        """The command dispatched after ``aim`` returned ``g`` writes the next results."""
        self.results, self.lent = g, False

    def must_rewrite(self) -> bool:
        """A masked reset must have every host write its other envs'
        observations again: the last results were lent, so they may have
        been changed, or may be held and are then not where it writes."""
        return self.lent

    def read_batch(self, copy: bool):
        """The last results' observations: views (``copy=False``), lent
        arrays, or copies when lending them would leave no generation free."""
        io, g = self.generations[self.results], self.results
        if not copy:
            return io.read_batch(False)
        if not (self.lends and any(self.free(h) for h in range(len(self.loans)) if h != g)):
            self.copied += 1
            return io.read_batch(True)
        arrays = [None if place is None else self.seg.array_at(*place) for place in self.places[g]]
        if io.simple:
            batch = arrays[0] if io.single else assemble(io.space, arrays)
        else:  # the other leaves are decoded afresh
            batch = io.read_batch(True, take=lambda k, _: arrays[k])
        lent = [weakref.ref(a) for a in arrays if a is not None]
        self.loans[g].extend(lent)
        self.lent = True
        self.borrowed += 1
        return batch
