"""Measures a vector env's memory, learner and every descendant, as PSS.

    python tests/memory_probe.py rock_vec|gym_async NUM_ENVS [ENVS_PER_WORKER] [SOAK_STEPS]
    python tests/memory_probe.py images|images_nocopy NUM_ENVS

Prints one JSON line: total PSS in MiB, and with SOAK_STEPS each process's
USS before and after that many env steps (for the soak test). ``images``:
(3, 224, 224) float32 observations with ``copy=True`` (``images_nocopy``:
``copy=False``), 10,000 steps of a loop that holds its last batch, as
``obs = envs.step(...)[0]`` does.
"""

import json
import sys

import gymnasium as gym
import numpy as np

import rock_vec


def tree(envs=None):
    """This process, its descendants, and a rock_vec pool's workers with their
    fork server: the server detaches from the learner (it outlives it to clean
    up), so it and its workers are not the learner's descendants."""
    import psutil  # here, not at the top: workers run this module's top level, and psutil is not the pool's

    me = psutil.Process()
    procs = {p.pid: p for p in [me, *me.children(recursive=True)]}
    for pid in getattr(envs, "worker_pids", []):
        worker = psutil.Process(pid)
        procs.setdefault(worker.pid, worker)
        server = worker.parent()
        if server is not None and server.pid != 1:
            procs.setdefault(server.pid, server)
    return list(procs.values())


def pss_mib(procs):
    return sum(p.memory_full_info().pss for p in procs) / 2**20


def uss(procs):
    return {p.pid: p.memory_full_info().uss / 2**20 for p in procs}


if __name__ == "__main__":  # workers run this module's top level too (as __mp_main__)
    runner, num_envs = sys.argv[1], int(sys.argv[2])
    epw = int(sys.argv[3]) if len(sys.argv) > 3 else None
    soak = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    if runner.startswith("images"):
        from rock_vec.synthetic import SYNTHETIC_MAKE_ID

        envs = rock_vec.make_vec(SYNTHETIC_MAKE_ID, num_envs, obs_shape=(3, 224, 224), obs_dtype="float32",
                                 copy=runner == "images")
        obs, _ = envs.reset(seed=0)
        for t in range(10_000 // num_envs):
            obs = envs.step(np.zeros(num_envs, np.int64))[0]
        result = {"runner": runner, "num_envs": num_envs, "pss_mib": pss_mib(tree(envs)),
                  "processes": len(tree(envs)), "batch_mib": obs.nbytes / 2**20}
        envs.close()
        print(json.dumps(result), flush=True)
        sys.exit(0)
    if runner == "rock_vec":
        envs = rock_vec.make_vec("CartPole-v1", num_envs=num_envs, envs_per_worker=epw)
    else:
        envs = gym.vector.AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * num_envs)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, (64, num_envs))
    for t in range(200):
        envs.step(actions[t % 64])
    result = {"runner": runner, "num_envs": num_envs, "pss_mib": pss_mib(tree(envs)), "processes": len(tree(envs))}
    if soak:
        batches = soak // num_envs
        for t in range(batches // 10):  # warm up: caches, allocator pools, episode buffers
            envs.step(actions[t % 64])
        before = uss(tree(envs))
        for t in range(batches):
            envs.step(actions[t % 64])
        after = uss(tree(envs))
        result["uss_before"], result["uss_after"] = before, after
        result["steps"] = batches * num_envs
    envs.close()
    print(json.dumps(result), flush=True)
