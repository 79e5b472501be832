"""rock_vec's SB3 face driven through random sequences of calls, with SB3's
DummyVecEnv as the model (a hypothesis state machine): seeds and options for
the next reset, resets, steps, attributes and env methods on chosen
indices, and calls out of order. Every result must equal the model's, type
for type, and a refused call must leave the pool as it was."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -e '.[test]')")
pytest.importorskip("stable_baselines3", reason="stable-baselines3 is not installed (pip install -e '.[test]')")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from rock_vec.errors import AlreadyPendingCallError, NoAsyncCallError  # noqa: E402
from rock_vec.sb3 import RockVecEnv  # noqa: E402
from sample_envs import SPACES, SpaceEnv  # noqa: E402
from same import Kept, assert_same  # noqa: E402

NUM_ENVS = 3
INDICES = st.one_of(st.none(), st.integers(-NUM_ENVS, NUM_ENVS - 1),
                    st.lists(st.integers(0, NUM_ENVS - 1), min_size=1, max_size=NUM_ENVS, unique=True))


class AgainstDummy(RuleBasedStateMachine):
    """One RockVecEnv and one DummyVecEnv of the same envs, called alike."""

    ours = model = None

    @initialize(obs=st.sampled_from(["box_f32", "dict"]), seed=st.integers(0, 2**31 - 1))
    def build(self, obs, seed):
        make = functools.partial(SpaceEnv, SPACES[obs], SPACES["discrete"], max_len=4)
        self.ours, self.model = RockVecEnv([make] * NUM_ENVS), DummyVecEnv([make] * NUM_ENVS)
        self.kept = Kept()
        self.both(lambda v: v.seed(seed))  # an env never seeded resets at random, in either
        self.compare(lambda v: v.reset(), "the first reset")

    def teardown(self):
        for venv in (self.ours, self.model):
            if venv is not None:
                venv.close()

    def both(self, call):
        return call(self.ours), call(self.model)

    def compare(self, call, what):
        got, want = self.both(call)
        assert_same(got, want, what)
        assert_same(self.ours.reset_infos, self.model.reset_infos, f"reset_infos after {what}")
        self.kept.add(Kept.snapshot(got))

    # ---- what users call ----

    @rule(seed=st.one_of(st.none(), st.integers(0, 2**31 - 1)),
          options=st.one_of(st.none(), st.fixed_dictionaries({"level": st.integers(0, 3)})))
    def reset(self, seed, options):
        if seed is not None:
            self.both(lambda v: v.seed(seed))
        if options is not None:
            self.both(lambda v: v.set_options(options))
        self.compare(lambda v: v.reset(), "reset")

    @rule(actions=st.lists(st.integers(-2, 2), min_size=NUM_ENVS, max_size=NUM_ENVS))
    def step(self, actions):
        actions = np.array(actions)
        got, want = self.both(lambda v: v.step(actions))
        assert_same(list(got[:3]), list(want[:3]), "step")
        assert_same(list(got[3]), list(want[3]), "step infos")
        assert_same(self.ours.reset_infos, self.model.reset_infos, "reset_infos after step")
        self.kept.add(Kept.snapshot(got[0]))

    @rule(forget=st.integers(0, 3))
    def let_go_of_a_kept_batch(self, forget):
        self.kept.forget(forget)

    @invariant()
    def kept_observations_never_change(self):
        if hasattr(self, "kept"):
            self.kept.check("observations kept since they were returned")

    @rule(indices=INDICES, value=st.integers(1, 9))
    def set_then_get_attr(self, indices, value):
        self.both(lambda v: v.set_attr("max_len", value, indices=indices))
        self.compare(lambda v: v.get_attr("max_len"), "get_attr after set_attr")

    @rule(indices=INDICES, args=st.lists(st.integers(-5, 5), max_size=2))
    def env_method(self, indices, args):
        self.compare(lambda v: v.env_method("echo", *args, indices=indices, k=1), "env_method")

    # ---- refused calls: an error, and the pool as it was ----

    @rule()
    def step_wait_without_step_async(self):
        with pytest.raises(NoAsyncCallError):
            self.ours.step_wait()

    @rule(actions=st.lists(st.integers(-2, 2), min_size=NUM_ENVS, max_size=NUM_ENVS))
    def a_second_call_while_a_step_is_pending(self, actions):
        actions = np.array(actions)
        self.ours.step_async(actions)
        for call in (lambda: self.ours.step_async(actions), self.ours.reset, lambda: self.ours.get_attr("t")):
            with pytest.raises(AlreadyPendingCallError):
                call()
        got, want = self.ours.step_wait(), self.model.step(actions)
        assert_same(list(got[:3]), list(want[:3]), "the pending step")
        assert_same(list(got[3]), list(want[3]), "the pending step's infos")


TestAgainstDummy = AgainstDummy.TestCase
# CI's budget (a few seconds); ROCK_VEC_MODEL_EXAMPLES=2000 for a long hunt.
TestAgainstDummy.settings = settings(max_examples=int(os.environ.get("ROCK_VEC_MODEL_EXAMPLES", 40)),
                                     stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
