"""Asynchronous batches on the jitter workload (steps of 10..200 us), 64 envs:
rock_vec's recv/send in batches of 16 against its own sync step, with
gymnasium's AsyncVectorEnv for reference (``rock-vec bench --suite async``).

    pytest bench/test_async.py --benchmark-only

A call makes 64 env steps under every runner (one batch step, or four
recv/send rounds of 16): env steps/s = 64 / mean.
"""

import pytest

NUM_ENVS, BATCH = 64, 16


@pytest.mark.parametrize("runner, batch_size", [("rock_vec_async", BATCH), ("rock_vec", None), ("gym_async", None)],
                         ids=["rock_vec_async", "rock_vec", "gym_async"])
def test_jitter(benchmark, stepper, runner, batch_size):
    step = stepper(runner, "jitter", NUM_ENVS, batch_size=batch_size)
    benchmark.group = f"jitter x{NUM_ENVS}"
    benchmark.extra_info.update(workload="jitter", num_envs=NUM_ENVS, runner=runner, batch_size=batch_size)
    benchmark(step)
