"""rock_vec: vectorized RL environments over shared memory and lock-free C.

    import rock_vec
    envs = rock_vec.make_vec("CartPole-v1", num_envs=64, envs_per_worker=8)
    envs = rock_vec.AsyncVectorEnv([lambda: MyEnv() for _ in range(8)])
"""

from .errors import RockVecError, WorkerDiedError, WorkerError
from .vector_env import AsyncVectorEnv, make_vec

__all__ = ["AsyncVectorEnv", "make_vec", "RockVecError", "WorkerDiedError", "WorkerError"]
__version__ = "0.1.0"
