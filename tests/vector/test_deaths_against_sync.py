"""Workers killed at random between calls of a pool with
``on_worker_failure="restart"`` (a hypothesis state machine against
SyncVectorEnv as the model): the step after a death reports the dead
worker's envs truncated with ``info["worker_restarted"]`` and every other
env exactly as the model; once the restarted envs are reset with seeds, the
whole pool is the model's again."""

from __future__ import annotations

import functools
import os
import signal
import time

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -e '.[test]')")
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule  # noqa: E402

import rock_vec  # noqa: E402
from sample_envs import SPACES, SpaceEnv  # noqa: E402
from same import assert_same, info_row  # noqa: E402

NUM_ENVS = 4
MAKE = functools.partial(SpaceEnv, SPACES["box_f32"], SPACES["discrete"], max_len=4)


def rows(batched, ids: list[int]) -> list:
    """Each of ``ids``' own infos, cut out of the batch."""
    return [info_row(batched, i) for i in ids]


class DeathsAgainstSync(RuleBasedStateMachine):
    """A pool of two workers (no learner share) that restarts dead ones, and its model."""

    ours = model = None

    @initialize(mode=st.sampled_from([AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]),
                seed=st.integers(0, 2**31 - 1))
    def build(self, mode, seed):
        self.ours = rock_vec.AsyncVectorEnv([MAKE] * NUM_ENVS, autoreset_mode=mode, learner_envs=0, num_workers=2,
                                            on_worker_failure="restart", max_restarts=1000)
        self.model = SyncVectorEnv([MAKE] * NUM_ENVS, autoreset_mode=mode)
        self.ranges = [(0, 2), (2, 4)]
        self.dead: set[int] = set()  # workers killed since the last step
        assert_same(self.ours.reset(seed=seed), self.model.reset(seed=seed), "the first reset")

    def teardown(self):
        for envs in (self.ours, self.model):
            if envs is not None:
                envs.close()

    @precondition(lambda self: not self.dead)
    @rule(worker=st.sampled_from([0, 1]))
    def kill(self, worker):
        pid = self.ours.worker_pids[worker]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:  # its death seen before the step
            time.sleep(0.005)
        self.dead.add(worker)

    @rule(actions_seed=st.integers(0, 2**16), resync_seed=st.integers(0, 2**31 - 1))
    def step(self, actions_seed, resync_seed):
        self.model.action_space.seed(actions_seed)
        actions = self.model.action_space.sample()
        obs, rew, term, trunc, info = self.ours.step(actions)
        want = self.model.step(actions)
        lost = sorted(i for w in self.dead for i in range(*self.ranges[w]))
        kept = [i for i in range(NUM_ENVS) if i not in lost]
        assert_same((obs[kept], rew[kept], term[kept], trunc[kept]), tuple(x[kept] for x in want[:4]), "kept envs")
        assert_same(rows(info, kept), rows(want[4], kept), "kept envs' infos")
        if lost:
            flagged = info["final_info"] if self.model.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP else info
            assert trunc[lost].all() and not term[lost].any() and flagged["worker_restarted"][lost].all()
            assert "worker_restarted" not in info or not info["_worker_restarted"][kept].any()
            mask = np.isin(np.arange(NUM_ENVS), lost)  # the restarted envs, seeded alike in both: in step again
            seeds = [resync_seed + i for i in range(NUM_ENVS)]
            got = self.ours.reset(seed=seeds, options={"reset_mask": mask.copy()})
            assert_same(got, self.model.reset(seed=seeds, options={"reset_mask": mask}), "the resync")
        self.dead.clear()


TestDeathsAgainstSync = DeathsAgainstSync.TestCase
# CI's budget (a few seconds); ROCK_VEC_MODEL_EXAMPLES=2000 for a long hunt.
TestDeathsAgainstSync.settings = settings(max_examples=int(os.environ.get("ROCK_VEC_MODEL_EXAMPLES", 25)),
                                          stateful_step_count=20, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
