"""rock_vec pools as RLlib's environments: one pool per EnvRunner, on its node.

rock_vec builds no cluster layer of its own. RLlib's EnvRunners are Ray actors;
each builds its envs where Ray placed it, so each gets a rock_vec pool on its
own node: the shared segment stays local, and only what RLlib already ships
(episodes, weights) crosses the network.

    import rock_vec.ray
    from ray.rllib.algorithms.ppo import PPOConfig

    rock_vec.ray.register("cartpole-pool", "CartPole-v1", envs_per_worker=4)
    config = (PPOConfig()
              .environment("cartpole-pool")
              .env_runners(num_env_runners=2, num_envs_per_env_runner=16, num_cpus_per_env_runner=2,
                           gym_env_vectorize_mode="vector_entry_point"))

RLlib calls the registered creator in each EnvRunner with its ``env_config``
plus ``num_envs``; the creator builds the pool there. The pool sizes its split
and spinning to the CPUs Ray granted the actor (``num_cpus_per_env_runner``),
not to the machine. Lifetimes: the pool's fork server lives apart from the
actor (see ``backends/forkserver.py``), so ``ray.kill``, a crashed EnvRunner or
a node whose Ray processes are killed leave no worker, container or segment. A
worker's death raises from ``step`` in the EnvRunner, which RLlib counts as an
env failure: ``restart_failed_sub_environments`` rebuilds the pool, else the
EnvRunner fails and ``restart_failed_env_runners`` restarts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from .. import vector_env
from ..engine.options import PoolOptions


def register(name: str, env: str | Callable[[dict], Any], **options: Any) -> str:
    """Registers ``name`` with Ray's env registry as a rock_vec pool.

    Args:
        name: what ``config.environment(name)`` will say.
        env: a gymnasium id (built with ``gymnasium.make(id, **env_config)``
            in each worker) or an env creator, RLlib's own convention:
            ``creator(env_config) -> gymnasium.Env``.
        options: rock_vec's pool options (``envs_per_worker``, ``backend``,
            ``on_worker_failure``, ...), for every EnvRunner's pool.

    Returns:
        ``name``.

    Raises:
        ImportError: Ray is missing, naming the extra to install.
        TypeError: a keyword that is not a pool option (the env's kwargs go
            in ``env_config``).
        ValueError: a bad option value, or an autoreset mode other than
            NEXT_STEP (RLlib's SingleAgentEnvRunner needs NEXT_STEP).
    """
    try:
        from ray.tune.registry import register_env
    except ImportError as exc:
        raise ImportError("rock_vec.ray needs Ray with RLlib: pip install 'rock-vec[ray]'") from exc
    register_env(name, PoolCreator(env, options))
    return name


class PoolCreator:
    """RLlib's env creator: a rock_vec pool when asked for ``num_envs``
    envs (``gym_env_vectorize_mode="vector_entry_point"``), else one env."""

    def __init__(self, env: str | Callable[[dict], Any], options: dict[str, Any]):
        mode = AutoresetMode(options.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        if mode != AutoresetMode.NEXT_STEP:
            raise ValueError(f"RLlib's SingleAgentEnvRunner steps NEXT_STEP autoreset, got autoreset_mode={mode}")
        if not (isinstance(env, str) or callable(env)):
            raise ValueError(f"env must be a gymnasium id or an env creator, got {env!r}")
        self.env, self.options = env, {k: v for k, v in options.items() if k != "autoreset_mode"}
        # Bad options fail here, not in each EnvRunner.
        PoolOptions.of(self.options, "rock_vec.ray.register").numpy_only(
            "rock_vec.ray.register", "RLlib's EnvRunner batches numpy arrays and moves them itself")

    def __call__(self, env_config: dict) -> Any:
        config = dict(env_config)
        num_envs = config.pop("num_envs", None)
        if num_envs is None:  # RLlib wants one env (spaces, evaluation without vectorizing)
            return self._one_env(config)
        # In the EnvRunner's actor the pool sizes itself to Ray's grant and
        # keeps the actor's torch off its workers (rock_vec.placement.cpus).
        if isinstance(self.env, str):
            return vector_env.make_vec(self.env, num_envs=num_envs, **self.options, **config)
        return vector_env.AsyncVectorEnv([_Bound(self.env, config)] * num_envs, **self.options)

    def _one_env(self, config: dict) -> Any:
        if isinstance(self.env, str):
            return gym.make(self.env, **config)
        return self.env(config)


class _Bound:
    """``creator(config)`` as the no-argument env function a pool takes."""

    def __init__(self, creator: Callable[[dict], Any], config: dict):
        self.creator, self.config = creator, config

    def __call__(self) -> Any:
        return self.creator(self.config)


