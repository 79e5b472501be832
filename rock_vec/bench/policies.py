"""Policies the training-loop benchmarks run between env steps (CPU torch).

- ``mlp``: the agent of CleanRL's ppo.py (two 64-unit tanh MLPs, actor and
  critic); each step it computes values and samples one action per env
  from a seeded torch generator, as a PPO rollout does.
- ``cnn``: the Nature CNN of CleanRL's ppo_atari.py on (4, 84, 84) uint8
  frames (HWC frames are transposed), with a value head; greedy actions.

A policy is ``policy(obs) -> actions`` (a numpy int64 batch). Torch runs
on one thread (``torch.set_num_threads(1)``, as ``threads`` says) for every
runner alike, so the envs' workers keep the other CPUs; ``make`` records the
forward time of a batch (``forward_ms``) for the report.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

POLICIES = ("mlp", "cnn")


def make(name: str, obs_shape: tuple, num_actions: int, seed: int = 0, threads: int = 1) -> Callable:
    """Builds policy ``name`` for observations of ``obs_shape``.

    Raises:
        ValueError: an unknown name.
        ImportError: torch is not installed.
    """
    import torch
    from torch import nn

    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    if name == "mlp":
        size = int(np.prod(obs_shape))

        def mlp(out: int) -> nn.Module:
            return nn.Sequential(nn.Linear(size, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out))

        actor, critic = mlp(num_actions), mlp(1)

        @torch.no_grad()
        def policy(obs: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(obs, dtype=torch.float32).reshape(len(obs), -1)
            critic(x)
            probs = torch.softmax(actor(x), dim=-1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(1).numpy()

    else:
        channels_last = obs_shape[-1] in (1, 3, 4) and obs_shape[0] not in (1, 3, 4)
        channels = obs_shape[-1] if channels_last else obs_shape[0]
        trunk = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU())
        actor, critic = nn.Linear(512, num_actions), nn.Linear(512, 1)

        @torch.no_grad()
        def policy(obs: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(obs)
            if channels_last:
                x = x.permute(0, 3, 1, 2)
            hidden = trunk(x.float() / 255.0)
            critic(hidden)
            return actor(hidden).argmax(dim=1).numpy()

    sample = np.zeros((16, *obs_shape), np.uint8 if name == "cnn" else np.float32)
    policy(sample)
    start = time.perf_counter()
    for _ in range(5):
        policy(sample)
    policy.forward_ms = (time.perf_counter() - start) / 5 * 1e3  # a batch of 16
    return policy
