"""RLlib's sampling as a runner: one SingleAgentEnvRunner as a Ray actor
(``EnvRunnerActor``), vectorised by a rock_vec pool through ``rock_vec.ray``,
by ``rock_vec.make_vec`` registered directly (``DirectPool``), or by RLlib's
default; and the three runner factories on it.

Its own module because it is the one runner that is not a vectoriser in
this process but an actor of another: it starts Ray, sizes the actor and
counts the pool's workers from inside it. Ray and RLlib are imported inside
the functions, so this module imports without them.
"""

from __future__ import annotations

import gymnasium as gym

from ..vector_env import make_vec
from .workloads import Workload

#: CPUs of each RLlib EnvRunner actor (``num_cpus_per_env_runner``).
RLLIB_RUNNER_CPUS = 2


class EnvRunnerActor:
    """One of RLlib's SingleAgentEnvRunners as a Ray actor of
    ``RLLIB_RUNNER_CPUS`` CPUs (as ``num_cpus_per_env_runner`` gives it),
    sampling ``num_envs`` envs with PPO's default policy, vectorised by a
    rock_vec pool (``rock_vec.ray``) or by RLlib's default (``"sync"``).

    Ray is started here if it is not yet (logical CPUs for three such
    actors: a group builds all of its runners, then measures them in turn,
    never together)."""

    def __init__(self, wl: Workload, num_envs: int, rock_vec_pool: str | None):
        import ray
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

        if not ray.is_initialized():
            ray.init(num_cpus=3 * RLLIB_RUNNER_CPUS, include_dashboard=False, log_to_driver=False)
        if rock_vec_pool == "register":
            from .. import ray as rock_vec_ray

            env, mode = rock_vec_ray.register(f"rock_vec:{wl.env_id}", wl.env_id), "vector_entry_point"
        elif rock_vec_pool == "direct":
            from ray.tune.registry import register_env

            env, mode = f"rock_vec-direct:{wl.env_id}", "vector_entry_point"
            register_env(env, DirectPool(wl.env_id))
        else:
            env, mode = wl.env_id, "sync"
        config = (PPOConfig().environment(env, env_config=dict(wl.kwargs))
                  .env_runners(num_envs_per_env_runner=num_envs, num_cpus_per_env_runner=RLLIB_RUNNER_CPUS,
                               gym_env_vectorize_mode=mode))
        self.actor = ray.remote(num_cpus=RLLIB_RUNNER_CPUS)(SingleAgentEnvRunner).remote(config=config)
        self.num_envs = num_envs
        split = ray.get(self.actor.apply.remote(lambda runner: getattr(runner.env.unwrapped, "split", None)))
        self.num_workers = split.num_workers if split else None
        self.learner_envs = split.learner_envs if split else num_envs

    def sample(self, steps: int) -> None:
        """Samples ``steps`` env steps (RLlib stops between ``steps`` and
        ``steps + num_envs - 1``); the episodes stay in the actor."""
        import ray

        ray.get(self.actor.apply.remote(lambda runner: len(runner.sample(num_timesteps=steps))))

    def close(self) -> None:
        import ray

        ray.get(self.actor.stop.remote())
        ray.kill(self.actor)


class DirectPool:
    """An env creator as a user writes one for ``register_env`` without
    ``rock_vec.ray``: ``rock_vec.make_vec`` when RLlib asks for ``num_envs``
    envs (``gym_env_vectorize_mode="vector_entry_point"``), else one env;
    the pool sized to the machine, the actor's torch left as Ray set it."""

    def __init__(self, env_id: str):
        self.env_id = env_id

    def __call__(self, env_config: dict):
        config = dict(env_config)
        num_envs = config.pop("num_envs", None)
        if num_envs is None:
            return gym.make(self.env_id, **config)
        return make_vec(self.env_id, num_envs=num_envs, **config)


def rllib_rock_vec_runner(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return EnvRunnerActor(wl, num_envs, rock_vec_pool="register")


def rllib_rock_vec_direct_runner(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return EnvRunnerActor(wl, num_envs, rock_vec_pool="direct")


def rllib_sync_runner(wl: Workload, num_envs: int, layout: int | None, batch_size: int | None):
    return EnvRunnerActor(wl, num_envs, rock_vec_pool=None)


def runner_learner_envs(envs: EnvRunnerActor, num_envs: int) -> int:
    """Envs stepped in the actor's own process (all of them under RLlib's default)."""
    return envs.learner_envs
