"""rock_vec: vectorized RL environments over shared memory and lock-free C.

    import rock_vec
    envs = rock_vec.make_vec("CartPole-v1", num_envs=64, envs_per_worker=8)
    envs = rock_vec.AsyncVectorEnv([lambda: MyEnv() for _ in range(8)])
"""

from ._version import __version__
from .errors import RockVecError, WorkerDiedError, WorkerError


def __getattr__(name: str):
    # Imported on first use: `python -m rock_vec.worker` (every worker)
    # loads the worker program without the learner's faces.
    if name in ("AsyncVectorEnv", "make_vec"):
        from . import vector_env

        return getattr(vector_env, name)
    raise AttributeError(f"module 'rock_vec' has no attribute {name!r}")


__all__ = ["AsyncVectorEnv", "make_vec", "RockVecError", "WorkerDiedError", "WorkerError", "__version__"]
