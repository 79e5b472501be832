"""rock_vec pools as RLlib's environments (``rock_vec.ray``), on a real
one-node Ray: RLlib's own SingleAgentEnvRunner and PPO drive them."""

import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import sample_envs
from same import assert_lockstep

pytestmark = pytest.mark.ray


def ppo(name, *, runners=1, envs=8, cpus=2, **env_runners):
    from ray.rllib.algorithms.ppo import PPOConfig

    return (PPOConfig().environment(name)
            .env_runners(num_env_runners=runners, num_envs_per_env_runner=envs, num_cpus_per_env_runner=cpus,
                         gym_env_vectorize_mode="vector_entry_point", **env_runners))


def pool_of(runner):
    """What one EnvRunner's env is, asked inside its actor."""
    import ray

    def look(er):
        pool = er.env.unwrapped
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "type": type(pool).__name__,
                "split": pool.split, "workers": list(pool.worker_pids), "autoreset": pool.metadata["autoreset_mode"]}

    return ray.get(runner.apply.remote(look))


def gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] != "Z"
                   for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_register_refuses_what_rllib_cannot_step():
    import rock_vec.ray

    with pytest.raises(TypeError, match="unexpected keyword argument 'max_episode_steps'"):
        rock_vec.ray.register("bad", "CartPole-v1", max_episode_steps=5)  # env kwargs go in env_config
    with pytest.raises(ValueError, match="NEXT_STEP"):
        rock_vec.ray.register("bad", "CartPole-v1", autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="envs_per_worker"):
        rock_vec.ray.register("bad", "CartPole-v1", envs_per_worker=0)
    with pytest.raises(ValueError, match="gymnasium id or an env creator"):
        rock_vec.ray.register("bad", 3)
    with pytest.raises(ValueError, match="RLlib's EnvRunner batches numpy arrays.*not to rock_vec.ray.register"):
        rock_vec.ray.register("bad", "CartPole-v1", array_backend="torch")


@pytest.mark.parametrize("env", ["CartPole-v1", sample_envs.configured_cartpole], ids=["id", "creator"])
def test_the_creator_passes_env_config_through_and_steps_as_sync_vector_env(env):
    """RLlib calls the creator with env_config plus num_envs: the pool gets
    the config (not num_envs) and steps exactly as gymnasium's own vector env."""
    from rock_vec.ray import PoolCreator

    config = {"max_episode_steps": 7} if isinstance(env, str) else {"limit": 7}
    creator = PoolCreator(env, {"envs_per_worker": 2})
    one = creator(dict(config))
    assert isinstance(one, gym.Env) and one.spec.max_episode_steps == 7
    one.close()
    pool = creator(dict(config, num_envs=4))
    assert pool.num_envs == 4 and pool.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    make = (lambda: gym.make(env, **config)) if isinstance(env, str) else (lambda: env(config))
    assert_lockstep(pool, SyncVectorEnv([make] * 4), steps=40, seed=3)  # truncations at 7: autoresets too


def test_cpu_ids_given_as_an_option_confine_the_pool_and_torch_keeps_the_rest(local_ray):
    def build():
        import torch

        from rock_vec.ray import PoolCreator

        torch.set_num_threads(2)  # as Ray's OMP_NUM_THREADS=2 has it in a 2-CPU actor
        pool = PoolCreator("CartPole-v1", {"cpus": (1,), "learner_envs": 0, "num_workers": 1})({"num_envs": 4})
        try:
            with open(f"/proc/{pool.worker_pids[0]}/status") as f:
                allowed = next(line.split(":")[1].strip() for line in f if line.startswith("Cpus_allowed_list"))
            return pool.num_workers, allowed, torch.get_num_threads()
        finally:
            pool.close()

    # The worker runs only on the CPU given; that one CPU is all the worker's,
    # so torch keeps one thread, never zero.
    assert local_ray.get(local_ray.remote(num_cpus=2)(build).remote()) == (1, "1", 1)


@pytest.mark.parametrize("cpus", [1, 2])
def test_an_env_runner_samples_a_pool_sized_to_the_cpus_ray_granted_it(local_ray, cpus):
    import rock_vec.ray
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    rock_vec.ray.register("cartpole-pool", "CartPole-v1")
    config = ppo("cartpole-pool", envs=8, cpus=cpus)
    runner = local_ray.remote(num_cpus=cpus)(SingleAgentEnvRunner).remote(config=config)
    seen = pool_of(runner)
    assert seen["type"] == "AsyncVectorEnv" and seen["autoreset"] == AutoresetMode.NEXT_STEP
    # Sized to the actor's CPUs, not the machine's: on one CPU the actor
    # steps all envs but one itself; on two it steps half, a worker the rest.
    assert (seen["split"].learner_envs, seen["split"].num_workers) == ((7, 1) if cpus == 1 else (4, 1))
    episodes = local_ray.get(runner.sample.remote(num_timesteps=800, random_actions=True))
    assert sum(len(e) for e in episodes) >= 800
    assert {len(e) for e in episodes if e.is_done} - set(range(8, 501)) == set()  # CartPole lasts 8..500 steps
    local_ray.get(runner.stop.remote())
    assert gone(seen["workers"], 2)
    local_ray.kill(runner)


def test_a_pool_built_in_any_actor_takes_the_cpus_ray_granted_and_keeps_torch_off_its_workers(local_ray):
    class Trainer:
        """An actor of a home-grown trainer that builds its own pool, no rock_vec.ray."""

        def build(self):
            import torch

            import rock_vec

            torch.set_num_threads(2)  # as Ray's OMP_NUM_THREADS=2 has it in a 2-CPU actor
            envs = rock_vec.make_vec("CartPole-v1", num_envs=8)
            try:
                envs.reset(seed=0)
                envs.step(envs.action_space.sample())
                return envs.split.learner_envs, envs.num_workers, torch.get_num_threads()
            finally:
                envs.close()

    trainer = local_ray.remote(num_cpus=2)(Trainer).remote()
    # Half the envs in the actor, one worker on the other granted CPU, and
    # torch's spinning threads off that CPU: one thread for the actor's own.
    assert local_ray.get(trainer.build.remote()) == (4, 1, 1)
    local_ray.kill(trainer)


@pytest.mark.parametrize("recovery", ["restart_failed_env_runners", "restart_failed_sub_environments"])
def test_a_dead_worker_is_an_env_failure_that_rllib_recovers_from(local_ray, recovery):
    """The worker's death raises from step in the EnvRunner; RLlib restarts
    the EnvRunner (a new actor, a new pool) or rebuilds its env (a new pool)."""
    import rock_vec.ray

    rock_vec.ray.register("cartpole-pool", "CartPole-v1")
    config = (ppo("cartpole-pool", envs=8, sample_timeout_s=5)
              .training(train_batch_size_per_learner=500, minibatch_size=250, num_epochs=1)
              .fault_tolerance(restart_failed_env_runners=True, delay_between_env_runner_restarts_s=1,
                               restart_failed_sub_environments=recovery == "restart_failed_sub_environments"))
    algo = config.build_algo()
    try:
        algo.train()
        (runner_id, before), = algo.env_runner_group.foreach_env_runner(
            lambda er: (os.getpid(), er.env.unwrapped.worker_pids), local_env_runner=False)
        os.kill(before[0], signal.SIGKILL)
        sampled, after = [], None
        for _ in range(30):
            result = algo.train()
            sampled.append(result["env_runners"].get("num_env_steps_sampled", 0))
            states = algo.env_runner_group.foreach_env_runner(lambda er: (os.getpid(), er.env.unwrapped.worker_pids),
                                                              local_env_runner=False)
            if states and states[0][1] != before and sampled[-1] > 0:
                after = states[0]
                break
        assert after is not None, f"no EnvRunner sampling from a new pool after 30 iterations: {sampled}"
        assert gone(before, 2)
        if recovery == "restart_failed_sub_environments":
            assert after[0] == runner_id  # the same actor rebuilt its env
            assert result["env_runners"]["num_env_step_failures"] >= 1
        else:
            assert after[0] != runner_id  # Ray restarted the actor
    finally:
        algo.stop()


@pytest.mark.slow
def test_ppo_learns_cartpole_through_rock_vec_pools(local_ray):
    import rock_vec.ray

    rock_vec.ray.register("cartpole-pool", "CartPole-v1")
    config = (ppo("cartpole-pool", runners=1, envs=16)
              .training(lr=3e-4, gamma=0.99, num_epochs=6, vf_loss_coeff=0.01, minibatch_size=128,
                        train_batch_size_per_learner=4000)
              .rl_module(model_config={"fcnet_hiddens": [64, 64], "vf_share_layers": True}))
    algo = config.build_algo()
    best, returns = 0.0, []
    try:
        for _ in range(60):
            result = algo.train()
            returns.append(result["env_runners"].get("episode_return_mean", np.nan))
            best = max(best, np.nan_to_num(returns[-1]))
            if best >= 450:
                break
    finally:
        algo.stop()
    assert best >= 450, f"mean episode return per iteration: {np.round(returns, 1).tolist()}"
