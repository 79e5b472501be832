"""PPO learning CartPole-v1 through a VecEnv, with RL Zoo's hyperparameters
for it: the end-to-end check of an SB3 face, wherever its envs run."""


def assert_learns_cartpole(venv, label: str, at_least: float, timesteps: int = 100_000) -> None:
    """Trains SB3's PPO on ``venv`` for ``timesteps`` (CPU, seed 0) and
    asserts a mean return of ``at_least`` over 20 deterministic evaluation
    episodes on it; closes ``venv``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    try:
        model = PPO("MlpPolicy", venv, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                    ent_coef=0.0, learning_rate=lambda f: f * 1e-3, clip_range=lambda f: f * 0.2, seed=0,
                    device="cpu", verbose=0)
        model.learn(total_timesteps=timesteps)
        mean, std = evaluate_policy(model, venv, n_eval_episodes=20, deterministic=True)
        print(f"PPO on CartPole-v1 through {label}: mean reward {mean:.1f} +- {std:.1f}")
        assert mean >= at_least
    finally:
        venv.close()
