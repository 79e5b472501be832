"""Training loops as users run them, rock_vec against SyncVectorEnv in the same run.

Every other benchmark here steps again the moment a batch returns; a
training loop does not. Two loops, both on CartPole-v1 wrapped in
RecordEpisodeStatistics, both measured as medians of interleaved repeats:

- The gap sweep: the learner is away T us between two steps (a busy loop, or
  torch forwards of an MLP at torch's default thread count), then steps
  with random actions. Reported: the median time inside ``envs.step`` and
  the whole loop's steps/s, for every T and env count.
- A PPO loop in the manner of CleanRL's ppo.py: an MLP actor-critic samples
  actions for 128-step rollouts of 8 envs, then 4 epochs of minibatch
  updates. Reported: the time inside ``envs.step``, the loop's steps/s, the
  losses (which must be identical bit for bit: the envs step alike), and
  the bound a free step would give (wall time over wall time less Sync's
  step time).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

from .runners import import_error

#: Learner gaps between two steps, in us.
GAPS_US = (0, 50, 150, 300, 1_000, 3_000)
#: Env counts of the sweep.
SWEEP_ENVS = (8, 16)
#: rock_vec's ``envs.step`` time over SyncVectorEnv's, at most, by env count.
STEP_TARGETS = {8: 1.0, 16: 0.8}
#: The whole loop's steps/s over SyncVectorEnv's, at least, where the gap is a policy forward.
LOOP_TARGET = 1.0
#: The PPO loop's targets: ``envs.step`` time over Sync's (at most) and steps/s over Sync's (at least).
PPO_STEP_TARGET, PPO_SPS_TARGET = 0.7, 1.05
RUNNERS = ("rock_vec", "gym_sync")


def cartpole() -> gym.Env:
    return gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))


def make_envs(runner: str, num_envs: int) -> gym.vector.VectorEnv:
    if runner == "rock_vec":
        import rock_vec

        return rock_vec.AsyncVectorEnv([cartpole] * num_envs)
    return gym.vector.SyncVectorEnv([cartpole] * num_envs)


def _order(items: list, rep: int) -> list:
    """``items`` rotated by ``rep``: each repeat starts with another runner."""
    shift = rep % len(items)
    return items[shift:] + items[:shift]


# ---------------------------------------------------------------- the gap sweep


def busy_gap(us: int) -> Callable[[np.ndarray], None]:
    """A learner that computes for ``us`` us on one thread (no syscalls, no memory)."""
    ns = us * 1000

    def gap(_obs) -> None:
        end = time.perf_counter_ns() + ns
        while time.perf_counter_ns() < end:
            pass

    return gap


def mlp_gap(us: int, obs_size: int = 4) -> Callable[[np.ndarray], None]:
    """A learner that runs forwards of CleanRL's PPO MLP (actor and critic)
    on the observations for ``us`` us (at least one when ``us`` > 0), at
    whatever thread count torch has."""
    import torch
    from torch import nn

    def mlp(out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(obs_size, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out))

    actor, critic = mlp(2), mlp(1)
    ns = us * 1000

    @torch.no_grad()
    def gap(obs) -> None:
        if not ns:
            return
        end = time.perf_counter_ns() + ns
        x = torch.as_tensor(obs, dtype=torch.float32)
        while True:
            critic(x)
            actor(x)
            if time.perf_counter_ns() >= end:
                break

    return gap


GAP_KINDS = {"busy": busy_gap, "mlp": mlp_gap}


def gap_loop(envs, gap: Callable[[np.ndarray], None], seconds: float, seed: int = 0) -> tuple[float, float]:
    """Runs ``gap(obs)`` then ``envs.step`` for ``seconds`` (after a tenth of
    that as warm-up); returns (median us inside ``envs.step``, loop steps/s)."""
    obs, _ = envs.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, envs.single_action_space.n, (64, envs.num_envs))
    clock = time.perf_counter_ns
    inside, i = [], 0
    warm_until = clock() + int(seconds * 1e8)
    while clock() < warm_until:
        gap(obs)
        obs = envs.step(actions[i & 63])[0]
        i += 1
    start = clock()
    end = start + int(seconds * 1e9)
    while True:
        gap(obs)
        t = clock()
        obs = envs.step(actions[i & 63])[0]
        now = clock()
        inside.append(now - t)
        i += 1
        if now >= end:
            break
    return statistics.median(inside) / 1e3, len(inside) * envs.num_envs / ((now - start) / 1e9)


def run_sweep(kinds: Sequence[str] = ("busy", "mlp"), gaps_us: Sequence[int] | None = None,
              env_counts: Sequence[int] | None = None, repeats: int = 3, seconds: float = 0.5,
              progress: Callable[[str], object] | None = None) -> list[dict]:
    """The gap sweep: for every kind, env count and gap (default
    ``SWEEP_ENVS``, ``GAPS_US``), rock_vec and Sync measured ``repeats``
    times in turn (the order rotating). Kinds whose module is missing
    (torch for 'mlp') are left out.

    Returns:
        One dict per (kind, num_envs, gap_us): ``step_us`` and ``steps_per_s``
        ({runner: median}), ``step_ratio`` and ``loop_ratio`` (rock_vec over
        Sync), ``step_target`` and ``step_met``, ``loop_target`` and
        ``loop_met`` (None where no target applies: the busy loop's rate).
    """
    rows = []
    for kind in kinds:
        if kind == "mlp" and import_error("torch"):
            continue
        for n in SWEEP_ENVS if env_counts is None else env_counts:
            envs = {r: make_envs(r, n) for r in RUNNERS}
            try:
                for us in GAPS_US if gaps_us is None else gaps_us:
                    gap = GAP_KINDS[kind](us)
                    samples = {r: [] for r in RUNNERS}
                    for rep in range(repeats):
                        for r in _order(list(RUNNERS), rep):
                            samples[r].append(gap_loop(envs[r], gap, seconds, seed=rep))
                    step = {r: statistics.median(s[0] for s in samples[r]) for r in RUNNERS}
                    rate = {r: statistics.median(s[1] for s in samples[r]) for r in RUNNERS}
                    row = {"kind": kind, "num_envs": n, "gap_us": us, "step_us": step, "steps_per_s": rate,
                           "step_ratio": step["rock_vec"] / step["gym_sync"],
                           "loop_ratio": rate["rock_vec"] / rate["gym_sync"],
                           "step_target": STEP_TARGETS.get(n), "loop_target": LOOP_TARGET if kind == "mlp" else None}
                    row["step_met"] = None if row["step_target"] is None else row["step_ratio"] <= row["step_target"]
                    row["loop_met"] = None if row["loop_target"] is None else row["loop_ratio"] >= row["loop_target"]
                    rows.append(row)
                    if progress:
                        progress(f"gap sweep {kind} x{n} T={us} us: step {step['rock_vec']:.0f} vs "
                                 f"{step['gym_sync']:.0f} us")
            finally:
                for e in envs.values():
                    e.close()
    return rows


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def format_sweep(rows: list[dict]) -> str:
    """The sweep as a table: per gap, step times and loop rates side by side."""
    if not rows:
        return ""
    head = (f"{'gap':>5} {'envs':>4} {'T us':>6} | {'step us rock_vec':>16} {'sync':>7} {'ratio':>6} "
            f"{'target':>8} | {'loop steps/s rock_vec':>21} {'sync':>8} {'ratio':>6} {'target':>9}")
    lines = ["learner gap sweep: T us away between steps (busy: a busy loop; mlp: CleanRL's PPO MLP forwards at "
             "torch's default threads), CartPole-v1 + RecordEpisodeStatistics; step = median time inside "
             "envs.step; ratios rock_vec / SyncVectorEnv", head, "-" * len(head)]
    for r in rows:
        st = f"<={r['step_target']:.2f} {_met(r['step_met'])}" if r["step_target"] is not None else ""
        lt = f">={r['loop_target']:.2f} {_met(r['loop_met'])}" if r["loop_target"] is not None else ""
        lines.append(f"{r['kind']:>5} {r['num_envs']:>4} {r['gap_us']:>6} | {r['step_us']['rock_vec']:>16.1f} "
                     f"{r['step_us']['gym_sync']:>7.1f} {r['step_ratio']:>6.2f} {st:>8} | "
                     f"{r['steps_per_s']['rock_vec']:>21,.0f} {r['steps_per_s']['gym_sync']:>8,.0f} "
                     f"{r['loop_ratio']:>6.2f} {lt:>9}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the PPO loop


@dataclass(frozen=True)
class PPO:
    """The settings of CleanRL's ppo.py for CartPole (its defaults)."""

    num_envs: int = 8
    num_steps: int = 128
    epochs: int = 4
    minibatches: int = 4
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5


def _agent(obs_size: int, num_actions: int):
    import torch
    from torch import nn

    def layer(i: int, o: int, std: float = 2 ** 0.5) -> nn.Linear:
        lin = nn.Linear(i, o)
        nn.init.orthogonal_(lin.weight, std)
        nn.init.constant_(lin.bias, 0.0)
        return lin

    critic = nn.Sequential(layer(obs_size, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 1.0))
    actor = nn.Sequential(layer(obs_size, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, num_actions, 0.01))

    def action_and_value(x, action=None, generator=None):
        logits = actor(x)
        dist = torch.distributions.Categorical(logits=logits)
        if action is None:
            action = torch.multinomial(dist.probs, 1, generator=generator).squeeze(1)
        return action, dist.log_prob(action), dist.entropy(), critic(x).squeeze(-1)

    return nn.ModuleList([actor, critic]), action_and_value


def ppo_run(envs, iterations: int, seed: int = 0, cfg: PPO = PPO()) -> dict:
    """``iterations`` PPO iterations (rollout, then update) on ``envs``.

    Returns:
        ``losses`` (per minibatch: policy, value, entropy, as floats),
        ``wall_s``, ``step_s`` (time inside ``envs.step``), ``steps``.
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    n, t_len = envs.num_envs, cfg.num_steps
    obs_size = int(np.prod(envs.single_observation_space.shape))
    model, action_and_value = _agent(obs_size, int(envs.single_action_space.n))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=1e-5)
    obs_buf = torch.zeros((t_len, n, obs_size))
    act_buf, logp_buf, rew_buf, done_buf, val_buf = (torch.zeros((t_len, n)) for _ in range(5))
    losses, step_ns = [], 0
    start = time.perf_counter_ns()
    next_obs = torch.as_tensor(envs.reset(seed=seed)[0], dtype=torch.float32)
    next_done = torch.zeros(n)
    for _ in range(iterations):
        for t in range(t_len):
            obs_buf[t], done_buf[t] = next_obs, next_done
            with torch.no_grad():
                action, logp, _, value = action_and_value(next_obs, generator=gen)
            val_buf[t], act_buf[t], logp_buf[t] = value, action, logp
            began = time.perf_counter_ns()
            o, r, term, trunc, _ = envs.step(action.numpy())
            step_ns += time.perf_counter_ns() - began
            rew_buf[t] = torch.as_tensor(r, dtype=torch.float32)
            next_obs = torch.as_tensor(o, dtype=torch.float32)
            next_done = torch.as_tensor(np.logical_or(term, trunc), dtype=torch.float32)
        with torch.no_grad():
            next_value = action_and_value(next_obs)[3]
            adv = torch.zeros_like(rew_buf)
            last = torch.zeros(n)
            for t in reversed(range(t_len)):
                not_done = 1.0 - (next_done if t == t_len - 1 else done_buf[t + 1])
                following = next_value if t == t_len - 1 else val_buf[t + 1]
                delta = rew_buf[t] + cfg.gamma * following * not_done - val_buf[t]
                last = delta + cfg.gamma * cfg.gae_lambda * not_done * last
                adv[t] = last
            returns = adv + val_buf
        b_obs, b_act, b_logp = obs_buf.reshape(-1, obs_size), act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret = adv.reshape(-1), returns.reshape(-1)
        batch = n * t_len
        size = batch // cfg.minibatches
        for _ in range(cfg.epochs):
            order = rng.permutation(batch)
            for lo in range(0, batch, size):
                idx = torch.as_tensor(order[lo:lo + size])
                _, new_logp, entropy, new_value = action_and_value(b_obs[idx], b_act[idx].long())
                ratio = (new_logp - b_logp[idx]).exp()
                mb_adv = b_adv[idx]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                v_loss = 0.5 * ((new_value - b_ret[idx]) ** 2).mean()
                ent = entropy.mean()
                loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                losses.append((pg_loss.item(), v_loss.item(), ent.item()))
    wall = (time.perf_counter_ns() - start) / 1e9
    return {"losses": losses, "wall_s": wall, "step_s": step_ns / 1e9, "steps": iterations * t_len * n}


def run_ppo(thread_counts: Sequence[int | None] = (None, 1), iterations: int = 8, repeats: int = 3,
            cfg: PPO = PPO(), progress: Callable[[str], object] | None = None) -> list[dict]:
    """The PPO loop on rock_vec and Sync, ``repeats`` interleaved runs per
    torch thread count (None: torch's default). Left out without torch.

    Returns:
        One dict per thread count: ``threads``, ``sps`` and ``step_s``
        ({runner: median}), ``sps_ratio`` and ``step_ratio`` (rock_vec over
        Sync), ``free_step_bound`` (Sync's wall time over its wall time less
        its step time: the most any vectorizer could give this loop),
        ``same_losses``, the targets and whether they were met.
    """
    if import_error("torch"):
        return []
    import torch

    default = torch.get_num_threads()
    rows = []
    envs = {r: make_envs(r, cfg.num_envs) for r in RUNNERS}
    try:
        for threads in thread_counts:
            torch.set_num_threads(default if threads is None else threads)
            runs = {r: [] for r in RUNNERS}
            for rep in range(repeats):
                for r in _order(list(RUNNERS), rep):
                    runs[r].append(ppo_run(envs[r], iterations, seed=0, cfg=cfg))
                    if progress:
                        progress(f"ppo loop, {torch.get_num_threads()} thread(s): {r} repeat {rep + 1}/{repeats}")
            sps = {r: statistics.median(x["steps"] / x["wall_s"] for x in runs[r]) for r in RUNNERS}
            step = {r: statistics.median(x["step_s"] for x in runs[r]) for r in RUNNERS}
            sync_wall = statistics.median(x["wall_s"] for x in runs["gym_sync"])
            losses = [x["losses"] for r in RUNNERS for x in runs[r]]
            row = {"threads": torch.get_num_threads(), "default_threads": threads is None, "sps": sps,
                   "step_s": step, "sps_ratio": sps["rock_vec"] / sps["gym_sync"],
                   "step_ratio": step["rock_vec"] / step["gym_sync"],
                   "free_step_bound": sync_wall / (sync_wall - step["gym_sync"]),
                   "same_losses": all(x == losses[0] for x in losses), "losses": len(losses[0]),
                   "step_target": PPO_STEP_TARGET, "sps_target": PPO_SPS_TARGET}
            row["step_met"] = row["step_ratio"] <= PPO_STEP_TARGET
            row["sps_met"] = row["sps_ratio"] >= PPO_SPS_TARGET
            rows.append(row)
    finally:
        torch.set_num_threads(default)
        for e in envs.values():
            e.close()
    return rows


def format_ppo(rows: list[dict], cfg: PPO = PPO()) -> str:
    if not rows:
        return ""
    head = (f"{'threads':>11} | {'steps/s rock_vec':>16} {'sync':>7} {'ratio':>6} {'target':>12} | "
            f"{'in envs.step s rock_vec':>23} {'sync':>6} {'ratio':>6} {'target':>12} | {'free-step bound':>15} "
            f"| same losses")
    lines = [f"PPO loop (CleanRL ppo.py's settings: {cfg.num_envs} envs, {cfg.num_steps}-step rollouts, "
             f"{cfg.epochs} epochs x {cfg.minibatches} minibatches), CartPole-v1 + RecordEpisodeStatistics", head,
             "-" * len(head)]
    for r in rows:
        label = f"{r['threads']}{' (default)' if r['default_threads'] else ''}"
        lines.append(
            f"{label:>11} | {r['sps']['rock_vec']:>16,.0f} {r['sps']['gym_sync']:>7,.0f} {r['sps_ratio']:>6.2f} "
            f"{'>=' + format(r['sps_target'], '.2f') + ' ' + _met(r['sps_met']):>12} | "
            f"{r['step_s']['rock_vec']:>23.3f} {r['step_s']['gym_sync']:>6.3f} {r['step_ratio']:>6.2f} "
            f"{'<=' + format(r['step_target'], '.2f') + ' ' + _met(r['step_met']):>12} | "
            f"{r['free_step_bound']:>14.2f}x | {'yes' if r['same_losses'] else 'NO'} ({r['losses']} minibatches)")
    return "\n".join(lines)
