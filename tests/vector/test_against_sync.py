"""rock_vec's AsyncVectorEnv driven through random sequences of calls, with
gymnasium's SyncVectorEnv as the model (a hypothesis state machine): resets
with seeds and masks, steps, env calls and attributes, and refused calls in
between, in each autoreset mode. Every result must equal the model's, type
for type, and a refused call must leave the pool as it was. Batches the user
keeps (``copy=True`` lends them out of the segment) never change, and one
the user changed in place changes nothing the pool returns later."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -e '.[test]')")
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule  # noqa: E402

import rock_vec  # noqa: E402
from rock_vec.segment.processes import pid_alive  # noqa: E402
from rock_vec.errors import AlreadyPendingCallError, NoAsyncCallError  # noqa: E402
from sample_envs import SPACES, SpaceEnv  # noqa: E402
from same import Kept, assert_same  # noqa: E402

NUM_ENVS = 3
MAKE = functools.partial(SpaceEnv, SPACES["dict"], SPACES["multi_discrete"], max_len=4)
SEEDS = st.one_of(st.none(), st.integers(0, 2**31 - 1),
                  st.lists(st.one_of(st.none(), st.integers(0, 2**31 - 1)), min_size=NUM_ENVS, max_size=NUM_ENVS))


class AgainstSync(RuleBasedStateMachine):
    """One rock_vec pool and one SyncVectorEnv of the same envs, called alike."""

    ours = model = None

    @initialize(mode=st.sampled_from(list(AutoresetMode)), seed=st.integers(0, 2**31 - 1))
    def build(self, mode, seed):
        self.mode = mode
        self.ours = rock_vec.AsyncVectorEnv([MAKE] * NUM_ENVS, autoreset_mode=mode)
        self.model = SyncVectorEnv([MAKE] * NUM_ENVS, autoreset_mode=mode)
        self.ended = np.zeros(NUM_ENVS, bool)  # DISABLED: envs that must be reset before the next step
        self.kept = Kept()
        # Seeded: an env never seeded resets at random, in either; later resets may leave seeds out.
        self.same(self.ours.reset(seed=seed), self.model.reset(seed=seed), "the first reset")

    def same(self, got, want, what: str) -> None:
        """``got`` is ``want``, type for type; its observations are the last batch."""
        assert_same(got, want, what)
        self.last = Kept.snapshot(got[0])

    def teardown(self):
        for envs in (self.ours, self.model):
            if envs is not None:
                envs.close()

    # ---- what users call ----

    @rule(seed=SEEDS, options=st.one_of(st.none(), st.fixed_dictionaries({"level": st.integers(0, 3)})))
    def reset(self, seed, options):
        self.same(self.ours.reset(seed=seed, options=options), self.model.reset(seed=seed, options=options),
                  "reset")
        self.ended[:] = False

    @rule(mask=st.lists(st.booleans(), min_size=NUM_ENVS, max_size=NUM_ENVS).filter(any), seed=SEEDS)
    def masked_reset(self, mask, seed):
        options = {"reset_mask": np.array(mask)}
        self.same(self.ours.reset(seed=seed, options=dict(options)), self.model.reset(seed=seed, options=options),
                  f"reset of {mask}")
        self.ended &= ~np.array(mask)

    @precondition(lambda self: not self.ended.any())
    @rule(actions_seed=st.integers(0, 2**16))
    def step(self, actions_seed):
        self.model.action_space.seed(actions_seed)
        actions = self.model.action_space.sample()
        got, want = self.ours.step(actions), self.model.step(actions)
        self.same(got, want, "step")
        if self.mode == AutoresetMode.DISABLED:
            self.ended = np.logical_or(want[2], want[3])

    @rule(args=st.lists(st.integers(-5, 5), max_size=2), flag=st.booleans())
    def call(self, args, flag):
        assert_same(self.ours.call("echo", *args, flag=flag), self.model.call("echo", *args, flag=flag), "call")

    @rule(values=st.one_of(st.floats(-1e6, 1e6), st.lists(st.integers(-9, 9), min_size=NUM_ENVS,
                                                           max_size=NUM_ENVS)))
    def set_then_get_attr(self, values):
        self.ours.set_attr("value", values)
        self.model.set_attr("value", values)
        assert_same(self.ours.get_attr("value"), self.model.get_attr("value"), "get_attr after set_attr")

    @rule()
    def keep_the_last_batch(self):
        self.kept.add(self.last)

    @rule(forget=st.integers(0, 3))
    def let_go_of_a_kept_batch(self, forget):
        self.kept.forget(forget)

    @rule()
    def change_the_last_batch_in_place(self):
        """Users normalise observations in place; the model's envs never see it."""
        for batch in self.last:
            batch["pos"] += 1.0
            batch["id"] += 1

    # ---- refused calls: an error, and the pool as it was ----

    @rule(n=st.sampled_from([0, NUM_ENVS - 1, NUM_ENVS + 1]))
    def actions_for_the_wrong_number_of_envs(self, n):
        with pytest.raises(ValueError, match=f"holds {n} actions for {NUM_ENVS} envs"):
            self.ours.step(np.zeros((n, 3), np.int64))

    @rule()
    def step_wait_without_step_async(self):
        with pytest.raises(NoAsyncCallError):
            self.ours.step_wait()

    @precondition(lambda self: not self.ended.any())
    @rule(actions_seed=st.integers(0, 2**16))
    def a_second_call_while_a_step_is_pending(self, actions_seed):
        self.model.action_space.seed(actions_seed)
        actions = self.model.action_space.sample()
        self.ours.step_async(actions)
        for call in (lambda: self.ours.step_async(actions), lambda: self.ours.reset(), lambda: self.ours.call("echo")):
            with pytest.raises(AlreadyPendingCallError):
                call()
        got, want = self.ours.step_wait(), self.model.step(actions)
        self.same(got, want, "the pending step")
        if self.mode == AutoresetMode.DISABLED:
            self.ended = np.logical_or(want[2], want[3])

    @invariant()
    def kept_batches_never_change(self):
        if hasattr(self, "kept"):
            self.kept.check("a batch kept since it was returned")

    @invariant()
    def every_worker_lives(self):
        if self.ours is not None:
            assert all(pid_alive(pid) for pid in self.ours.worker_pids)


TestAgainstSync = AgainstSync.TestCase
# CI's budget (a few seconds); ROCK_VEC_MODEL_EXAMPLES=2000 for a long hunt.
TestAgainstSync.settings = settings(max_examples=int(os.environ.get("ROCK_VEC_MODEL_EXAMPLES", 40)),
                                    stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
