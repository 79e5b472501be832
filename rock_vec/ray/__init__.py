"""rock_vec past one machine, with Ray as the engine (no cluster layer of our own).

Two ways, each a module:

- ``rllib``: RLlib's EnvRunners build a rock_vec pool each, on their own
  node (``register``, ``PoolCreator``).
- ``vector``: any other trainer steps one ``VectorEnv`` whose envs live in
  rock_vec pools, one Ray actor per pool, on many nodes (``make_vec``,
  ``AsyncVectorEnv``); ``actors``: those pool actors and the learner's
  handle on them (placement, waits, failures).

Ray is an extra: ``pip install 'rock-vec[ray]'``; nothing here imports it
until a call needs it.
"""

from .actors import PoolActor
from .rllib import PoolCreator, register
from .vector import AsyncVectorEnv, make_vec

__all__ = ["AsyncVectorEnv", "PoolActor", "PoolCreator", "make_vec", "register"]
