"""RLlib's sampling (``rock-vec bench --suite rllib``): one SingleAgentEnvRunner,
a Ray actor of 2 CPUs with PPO's default policy, sampling 16 envs vectorised
by a rock_vec pool or by RLlib's default SyncVectorEnv. Needs Ray with RLlib
(``pip install -e '.[ray]'`` in an environment of its own).

    pytest bench/test_rllib.py --benchmark-only

A call is one ``EnvRunner.sample`` of 2048 env steps: env steps/s = 2048 / mean.
"""

import pytest

from rock_vec.bench.drivers import RLLIB_STEPS_PER_ENV, start
from rock_vec.bench.runners import make_envs, unavailable

NUM_ENVS = 16


@pytest.mark.parametrize("workload", ["cartpole", "busy100"])
@pytest.mark.parametrize("runner", ["rllib_rock_vec", "rllib_sync"])
def test_rllib_sample(benchmark, runner, workload):
    reason = unavailable(runner)
    if reason:
        pytest.skip(reason)
    envs = make_envs(runner, workload, NUM_ENVS)
    try:
        drive = start(runner, envs, NUM_ENVS)
        drive.round(drive.actions[0])  # the first sample resets every env
        benchmark.group = f"rllib {workload} x{NUM_ENVS}"
        benchmark.extra_info.update(workload=workload, num_envs=NUM_ENVS, runner=runner,
                                    env_steps_per_call=NUM_ENVS * RLLIB_STEPS_PER_ENV)
        benchmark.pedantic(drive.round, args=(drive.actions[0],), rounds=5, warmup_rounds=1)
    finally:
        envs.close()
