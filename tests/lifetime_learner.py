"""A learner program for tests/engine/test_lifetimes.py, run as a subprocess.

Prints one JSON line with its pool's pids, then behaves as `mode` says.
"""

import json
import os
import sys
import threading
import time

import numpy as np

import rock_vec
from rock_vec.backends.forkserver import ForkServer

if __name__ == "__main__":  # workers run this module's top level too (as __mp_main__)
    mode = sys.argv[1]
    if mode == "threads":  # the learner already runs threads, as torch and JAX do
        for _ in range(4):
            threading.Thread(target=lambda: [time.sleep(0.001) for _ in iter(int, 1)], daemon=True).start()
    import gymnasium as gym

    context = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    backend = {"backend": sys.argv[3]} if len(sys.argv) > 3 else {}
    envs = rock_vec.AsyncVectorEnv([lambda: gym.make("CartPole-v1")] * 4, num_workers=2, context=context, **backend)
    envs.reset(seed=0)
    server = ForkServer.get().pid if context != "spawn" else None
    print(json.dumps({"workers": envs.worker_pids, "server": server, "learner": os.getpid()}), flush=True)
    actions = np.zeros(4, np.int64)
    if mode == "loop":
        while True:
            envs.step(actions)
    elif mode == "raise":
        envs.step(actions)
        raise RuntimeError("the training loop failed")
    elif mode == "exit_without_close":
        envs.step(actions)
        sys.exit(0)
    elif mode == "threads":
        for _ in range(100):
            envs.step(actions)
        envs.close()
        print("done", flush=True)
    elif mode == "sleep":
        time.sleep(3600)
