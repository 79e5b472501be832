"""EnvPool-style ``async_reset``/``send``/``recv`` driven through random
sequences (a hypothesis state machine): sends of random env subsets, recvs
of whichever envs finish first, resets of the whole pool at any time, and
refused calls in between. The model is one SyncVectorEnv per env (envs are
independent): each row ``recv`` returns must equal, type for type, what that
env's model gave for the same action."""

from __future__ import annotations

import functools
import os
from collections import deque

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -e '.[test]')")
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule  # noqa: E402

import rock_vec  # noqa: E402
from rock_vec.segment.processes import pid_alive  # noqa: E402
from rock_vec.errors import AlreadyPendingCallError, NoAsyncCallError, RockVecError  # noqa: E402
from sample_envs import SPACES, SpaceEnv  # noqa: E402
from same import assert_same, info_row  # noqa: E402

NUM_ENVS, BATCH = 4, 2
MAKE = functools.partial(SpaceEnv, SPACES["box_f32"], SPACES["discrete"], max_len=4)


class AsyncAgainstSync(RuleBasedStateMachine):
    """One rock_vec pool in batches of ``BATCH``, and a SyncVectorEnv of one env per env."""

    ours = None

    @initialize(mode=st.sampled_from([AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]),
                seed=st.integers(0, 2**31 - 1), learner_envs=st.sampled_from([None, 1, 2]))
    def build(self, mode, seed, learner_envs):
        # learner_envs: the learner's own share takes part, stepped by recv (rock_vec.engine.batches)
        self.ours = rock_vec.AsyncVectorEnv([MAKE] * NUM_ENVS, autoreset_mode=mode, batch_size=BATCH,
                                            learner_envs=learner_envs)
        self.models = [SyncVectorEnv([MAKE], autoreset_mode=mode) for _ in range(NUM_ENVS)]
        self.expected: list[deque] = [deque() for _ in range(NUM_ENVS)]  # each env's results not yet received
        self.async_reset(seed)

    def teardown(self):
        if self.ours is not None:
            self.ours.close()
            for model in self.models:
                model.close()

    def in_flight(self) -> list[int]:
        return [i for i in range(NUM_ENVS) if self.expected[i]]

    # ---- what users call ----

    @rule(seed=st.integers(0, 2**31 - 1))
    def async_reset(self, seed):
        self.ours.async_reset(seed=seed)  # also drops every result not yet received
        for i, model in enumerate(self.models):
            obs, info = model.reset(seed=seed + i)
            self.expected[i] = deque([(obs, np.zeros(1), np.zeros(1, bool), np.zeros(1, bool), info)])

    @precondition(lambda self: len(self.in_flight()) < NUM_ENVS)
    @rule(data=st.data())
    def send(self, data):
        idle = [i for i in range(NUM_ENVS) if not self.expected[i]]
        ids = data.draw(st.lists(st.sampled_from(idle), min_size=1, unique=True))
        actions = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=len(ids), max_size=len(ids))))
        self.ours.send(actions, np.array(ids))
        for i, a in zip(ids, actions):
            self.expected[i].append(self.models[i].step(np.array([a])))

    @precondition(lambda self: len(self.in_flight()) >= BATCH)
    @rule()
    def recv(self):
        obs, rew, term, trunc, info = self.ours.recv()
        ids = info["env_id"]
        assert ids.dtype == np.int32 and len(ids) == BATCH and len(set(ids.tolist())) == BATCH
        for k, i in enumerate(ids.tolist()):
            want = self.expected[i].popleft()
            got = (obs[k:k + 1], rew[k:k + 1], term[k:k + 1], trunc[k:k + 1], info_row(info, k, want[4]))
            assert_same(got, want, f"env {i}'s row")

    # ---- refused calls: an error, and the pool as it was ----

    @precondition(lambda self: len(self.in_flight()) < BATCH)
    @rule()
    def recv_with_too_few_running(self):
        if not self.in_flight():
            with pytest.raises(NoAsyncCallError):
                self.ours.recv()
        else:
            with pytest.raises(RockVecError, match="fewer than batch_size"):
                self.ours.recv()

    @precondition(lambda self: self.in_flight())
    @rule()
    def sending_to_a_running_env(self):
        i = self.in_flight()[0]
        with pytest.raises(ValueError, match="already running"):
            self.ours.send(np.zeros(1, np.int64), np.array([i]))

    @precondition(lambda self: self.in_flight())
    @rule()
    def a_sync_step_while_envs_run(self):
        with pytest.raises(AlreadyPendingCallError, match="running asynchronously"):
            self.ours.step(np.zeros(NUM_ENVS, np.int64))

    @rule(ids=st.sampled_from([[NUM_ENVS], [0, 0], [-1]]))
    def bad_env_ids(self, ids):
        with pytest.raises(ValueError, match="env_id"):
            self.ours.send(np.zeros(len(ids), np.int64), np.array(ids))

    @invariant()
    def every_worker_lives(self):
        if self.ours is not None:
            assert all(pid_alive(pid) for pid in self.ours.worker_pids)


TestAsyncAgainstSync = AsyncAgainstSync.TestCase
# CI's budget (a few seconds); ROCK_VEC_MODEL_EXAMPLES=2000 for a long hunt.
TestAsyncAgainstSync.settings = settings(max_examples=int(os.environ.get("ROCK_VEC_MODEL_EXAMPLES", 40)),
                                         stateful_step_count=30, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
