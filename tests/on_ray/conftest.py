"""Ray and RLlib for the tests in this folder, or a skip naming what is missing.

They need Ray with RLlib (``pip install -e '.[test,ray]'``, in an environment
of its own: ``ray[rllib]`` 2.60 pins gymnasium 1.2.2). CI builds that
environment and makes them mandatory (ROCK_VEC_REQUIRE_RAY=1)."""

import os

import pytest

#: tests/ for Ray's workers, which import sample_envs as the tests do.
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local clusters of one machine; Ray 2.60 wants a token otherwise


def _why_missing() -> str | None:
    try:
        import ray  # noqa: F401
        from ray.rllib.algorithms.ppo import PPOConfig  # noqa: F401
    except ImportError as exc:
        return f"Ray with RLlib is missing ({exc}): pip install -e '.[test,ray]' (see README, 'Past one machine')"
    return None


def pytest_collection_modifyitems(config, items):
    why = _why_missing()
    if why is None:
        return
    here = os.path.dirname(__file__)
    ours = [item for item in items if str(item.fspath).startswith(here)]
    if ours and os.environ.get("ROCK_VEC_REQUIRE_RAY") == "1":
        raise pytest.UsageError(f"ROCK_VEC_REQUIRE_RAY=1 but {why}")
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="module")
def local_ray():
    """A one-node Ray of 2 CPUs in this process, for one test module."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": TESTS}})
    yield ray
    ray.shutdown()
