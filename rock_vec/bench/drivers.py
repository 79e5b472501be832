"""How a runner's envs are driven: ``start`` resets them the way its API
does and returns a ``Drive``, one round of that API at a time.

There are six drivers. Four drive an API without a ``policies`` policy,
one per API in ``DRIVERS``, three of them with random valid actions
(``sample_actions``):

- ``vector``: gymnasium's ``VectorEnv.step`` on every env (EnvPool's sync
  mode too);
- ``async``: EnvPool-style batches, ``recv`` the next ``batch_size`` envs
  and ``send`` their actions;
- ``sb3``: Stable-Baselines3's ``VecEnv.step`` on every env;
- ``rllib``: one ``EnvRunner.sample`` of an RLlib actor, whose own policy
  chooses the actions (the batch given is unused).

Two run a training loop, a policy's forward on the observations before each
step, one per API in ``POLICY_DRIVERS``: ``vector`` (``step(policy(obs))``)
and ``overlap`` (``step_envs`` on one batch while the others step).

A round counts *env steps* (``Drive.rows``): a ``vector`` or ``sb3`` round
steps ``num_envs`` envs, an ``async`` or ``overlap`` round receives
``batch_size`` rows, an ``rllib`` round samples ``RLLIB_STEPS_PER_ENV`` per
env. Apart from the runners because every runner of an API shares its
driver, and from the timing because the pytest-benchmark files
(``bench/``) drive the same rounds under their own clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from .rllib_runner import EnvRunnerActor
from .runners import Runner, runner_named

#: Env steps one ``rllib`` round samples, per env.
RLLIB_STEPS_PER_ENV = 128


def sample_actions(space: gym.Space, rows: int, count: int = 16, seed: int = 0, dtype: str | None = None) -> np.ndarray:
    """``count`` batches of ``rows`` valid actions of the single-env
    ``space``, stacked: shape (count, rows, ...)."""
    space.seed(seed)
    out = np.stack([np.stack([np.asarray(space.sample()) for _ in range(rows)]) for _ in range(count)])
    return out if dtype is None else out.astype(dtype)


@dataclass
class Drive:
    """A started runner: call ``round(actions[i])`` again and again, then ``finish()``.

    Attributes:
        round: one round of the runner's API, given one batch of actions.
        actions: (count, rows, ...) valid action batches to cycle through
            (count is a power of two).
        rows: env steps one round makes.
        finish: leaves nothing running (the envs can be reset or closed).
    """

    round: Callable[[np.ndarray], Any]
    actions: np.ndarray
    rows: int
    finish: Callable[[], None] = lambda: None


def _drive_vector(envs, num_envs: int, batch_size: int | None, seed: int | None, dtype: str | None) -> Drive:
    """gymnasium's VectorEnv (and EnvPool's sync mode): ``step`` on every env."""
    if seed is None:
        envs.reset()
    else:
        envs.reset(seed=seed)
    actions = sample_actions(envs.single_action_space, num_envs, seed=seed or 0, dtype=dtype)
    return Drive(envs.step, actions, num_envs)


def _drive_async(envs, num_envs: int, batch_size: int | None, seed: int | None, dtype: str | None) -> Drive:
    """EnvPool-style batches: ``recv`` the next ``batch_size`` envs, ``send``
    their actions. Every env is in flight between rounds; ``finish`` receives
    them all."""
    if batch_size is None or num_envs % batch_size:
        raise ValueError(f"the async API needs a batch_size that divides num_envs={num_envs}, got {batch_size!r}")
    if seed is None:
        envs.async_reset()
    else:
        envs.async_reset(seed=seed)
    recv, send = envs.recv, envs.send

    def round_(actions: np.ndarray) -> None:
        send(actions, recv()[4]["env_id"])

    def finish() -> None:
        for _ in range(num_envs // batch_size):
            recv()

    actions = sample_actions(envs.single_action_space, batch_size, seed=seed or 0, dtype=dtype)
    return Drive(round_, actions, batch_size, finish)


def _drive_sb3(envs, num_envs: int, batch_size: int | None, seed: int | None, dtype: str | None) -> Drive:
    """Stable-Baselines3's VecEnv: ``step`` (step_async + step_wait) on every env."""
    if seed is not None:
        envs.seed(seed)
    envs.reset()
    actions = sample_actions(envs.action_space, num_envs, seed=seed or 0, dtype=dtype)
    return Drive(envs.step, actions, num_envs)


def _drive_rllib(envs: EnvRunnerActor, num_envs: int, batch_size: int | None, seed: int | None,
                 dtype: str | None) -> Drive:
    """RLlib's sampling loop: each round is one ``EnvRunner.sample`` of
    ``RLLIB_STEPS_PER_ENV`` steps per env, its own policy choosing the
    actions (the batch given is unused), its episodes kept in the actor.
    A round counts the steps asked for: RLlib may sample up to num_envs - 1
    more (< 0.8% at 16 envs, alike for every runner)."""
    steps = num_envs * RLLIB_STEPS_PER_ENV
    return Drive(lambda _actions: envs.sample(steps), np.zeros((1, num_envs)), steps)


def _drive_policy_vector(envs, num_envs: int, batch_size: int | None, seed: int | None, policy) -> Drive:
    """A training loop on a VectorEnv: ``step(policy(obs))``, the policy's
    forward and the envs' step taking turns."""
    obs, _ = envs.reset() if seed is None else envs.reset(seed=seed)
    last = [obs]

    def round_(_actions) -> None:
        last[0] = envs.step(policy(last[0]))[0]

    return Drive(round_, np.zeros((1, num_envs), np.int64), num_envs)


def _drive_policy_overlap(envs, num_envs: int, batch_size: int | None, seed: int | None, policy) -> Drive:
    """The overlapped training loop (README "The learner never waits"):
    each round computes the actions of one batch and hands them over with
    ``step_envs``, which returns the next batch to finish, stepped while
    the policy ran."""
    if batch_size is None or num_envs % batch_size:
        raise ValueError(f"the overlap loop needs a batch_size that divides num_envs={num_envs}, got {batch_size!r}")
    envs.async_reset() if seed is None else envs.async_reset(seed=seed)
    last = [envs.recv()]

    def round_(_actions) -> None:
        obs, *_, info = last[0]
        last[0] = envs.step_envs(policy(obs), info["env_id"])

    def finish() -> None:
        for _ in range(num_envs // batch_size - 1):
            envs.recv()

    return Drive(round_, np.zeros((1, batch_size), np.int64), batch_size, finish)


DRIVERS: dict[str, Callable[..., Drive]] = {"vector": _drive_vector, "async": _drive_async, "sb3": _drive_sb3,
                                            "rllib": _drive_rllib}
#: Drivers of a training loop with a policy, by API.
POLICY_DRIVERS: dict[str, Callable[..., Drive]] = {"vector": _drive_policy_vector, "overlap": _drive_policy_overlap}


def start(runner: str | Runner, envs, num_envs: int, batch_size: int | None = None, seed: int = 0,
          policy=None) -> Drive:
    """Resets ``envs`` (built by ``runners.make_envs``) the way ``runner``'s
    API does and returns its ``Drive``; with ``policy`` (``bench.policies``)
    each round runs it on the observations first, as a training loop does."""
    spec = runner_named(runner)
    seed = seed if spec.seeded else None
    if policy is not None:
        if spec.api not in POLICY_DRIVERS:
            raise ValueError(f"{spec.name} has no training loop (api {spec.api!r})")
        return POLICY_DRIVERS[spec.api](envs, num_envs, batch_size, seed, policy)
    if spec.api == "overlap":
        raise ValueError(f"{spec.name} runs a policy: give the group one")
    return DRIVERS[spec.api](envs, num_envs, batch_size, seed, spec.action_dtype)
