"""A real Ray cluster of two nodes on this machine (``ray start --head`` and
``ray start --address``): RLlib's EnvRunners on both nodes step rock_vec pools
of their own node, and however an EnvRunner or a node ends, nothing of its
pool stays on that node: no worker, no container, no segment."""

import os
import signal

import psutil
import pytest
from clusters import alive, left_after, local_cluster, mapped_segments, raylet_of, segments_of

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of 2 CPUs each, and this process connected as the driver."""
    with local_cluster(nodes=2) as nodes:
        yield {"head": nodes["head"], "other": nodes["others"][0]}


def look(er):
    """An EnvRunner's pool, seen from inside its actor."""
    import ray

    from rock_vec.backends.forkserver import ForkServer

    pool = er.env.unwrapped
    return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "split": pool.split,
            "workers": list(pool.worker_pids), "server": ForkServer.get().pid if pool.worker_pids else None}


def docker_or_skip():
    why = None
    try:
        from rock_vec.backends import docker as backend

        engine = backend.client()
        engine.images.get(backend.default_image())
        return engine
    except ImportError as exc:
        why = f"the docker SDK is missing ({exc})"
    except RuntimeError as exc:
        why = str(exc)
    except Exception as exc:  # noqa: BLE001 - the image is missing
        why = f"no worker image ({type(exc).__name__}): `rock-vec image build`"
    if os.environ.get("ROCK_VEC_REQUIRE_DOCKER") == "1":
        pytest.fail(f"ROCK_VEC_REQUIRE_DOCKER=1 but {why}")
    pytest.skip(why)


def config_for(name, envs=8):
    from ray.rllib.algorithms.ppo import PPOConfig

    return (PPOConfig().environment(name)
            .env_runners(num_env_runners=2, num_envs_per_env_runner=envs, num_cpus_per_env_runner=2,
                         gym_env_vectorize_mode="vector_entry_point"))


@pytest.mark.parametrize("backend", ["forkserver", "docker"])
@pytest.mark.parametrize("how", ["ray.kill", "crash"])
def test_a_killed_env_runner_leaves_nothing_of_its_pool(cluster, backend, how):
    """``ray.kill`` (Ray kills the actor's children too) or a crash (the
    actor alone dies): the pool's fork server, which lives apart, removes
    workers, containers and the segment's name."""
    import ray
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    import rock_vec.ray

    engine = docker_or_skip() if backend == "docker" else None
    rock_vec.ray.register(f"cartpole-{backend}", "CartPole-v1", backend=backend)
    runner = ray.remote(num_cpus=2)(SingleAgentEnvRunner).remote(config=config_for(f"cartpole-{backend}"))
    episodes = ray.get(runner.sample.remote(num_timesteps=200, random_actions=True))
    assert sum(len(e) for e in episodes) >= 200
    seen = ray.get(runner.apply.remote(look))
    label = f"rock_vec.learner={seen['pid']}"
    if backend == "docker":
        assert len(engine.containers.list(filters={"label": label})) == 2  # containers step every env, one per CPU
        assert segments_of(seen["pid"])  # containers open the segment by its name
    else:
        assert seen["workers"] and all(mapped_segments(w) for w in seen["workers"])
    if how == "ray.kill":
        ray.kill(runner)
    else:
        os.kill(seen["pid"], signal.SIGKILL)
    processes = seen["workers"] + [seen["server"]] + [seen["pid"]]
    assert not left_after(5, lambda: [p for p in processes if alive(p)])
    assert not left_after(5, lambda: segments_of(seen["pid"]))
    if backend == "docker":
        assert not left_after(5, lambda: engine.containers.list(all=True, filters={"label": label}, sparse=True))


def test_env_runners_on_both_nodes_step_their_own_pools_and_a_dead_node_leaves_nothing(cluster):
    import rock_vec.ray

    rock_vec.ray.register("cartpole-cluster", "CartPole-v1")
    algo = config_for("cartpole-cluster").training(train_batch_size_per_learner=1000, minibatch_size=250,
                                                    num_epochs=1).build_algo()
    try:
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] >= 1000
        runners = algo.env_runner_group.foreach_env_runner(look, local_env_runner=False)
        by_node = {r["node"]: r for r in runners}
        assert set(by_node) == {cluster["head"], cluster["other"]}  # 2 CPUs each: one EnvRunner per node
        for node, r in by_node.items():
            # The actor is a worker of its node's raylet, and its pool's
            # workers map the segment named after that actor.
            assert raylet_of(node).pid in [p.pid for p in psutil.Process(r["pid"]).parents()]
            assert (r["split"].learner_envs, r["split"].num_workers) == (4, 1)
            for w in r["workers"]:
                names = [os.path.basename(s) for s in mapped_segments(w)]
                assert names and all(n.startswith(f"rock_vec.{r['pid']}.") for n in names), (w, names)

        # The node goes away: its raylet and every process under it die at once.
        doomed = by_node[cluster["other"]]
        raylet = raylet_of(cluster["other"])
        for proc in [raylet, *raylet.children(recursive=True)]:
            proc.kill()
        processes = doomed["workers"] + [doomed["server"], doomed["pid"]]
        assert not left_after(5, lambda: [p for p in processes if alive(p)])
        assert not left_after(5, lambda: segments_of(doomed["pid"]))
        survivor = by_node[cluster["head"]]
        assert all(alive(p) for p in survivor["workers"] + [survivor["pid"]])  # the other node's pool goes on
    finally:
        algo.stop()
