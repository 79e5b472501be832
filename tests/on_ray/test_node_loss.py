"""A node lost under a ``rock_vec.ray`` VectorEnv, on a real two-node cluster
of its own (the test ends a node): the step fails within 3 s, named, and
nothing of that node's pool stays."""

import functools
import threading
import time

import numpy as np
import pytest
from clusters import alive, left_after, local_cluster, raylet_of, segments_of

import sample_envs

pytestmark = pytest.mark.ray


def test_a_lost_node_fails_the_step_within_3_s_and_leaves_nothing_there():
    from rock_vec.errors import WorkerDiedError
    import rock_vec.ray

    def kill_node(node):
        raylet = raylet_of(node)
        for proc in [raylet, *raylet.children(recursive=True)]:
            proc.kill()

    with local_cluster(nodes=2, cpus=1) as nodes:  # a cluster of its own: this test ends a node
        slow = functools.partial(sample_envs.FailingEnv, fail_index=-1, step_seconds=0.2)
        envs = rock_vec.ray.AsyncVectorEnv([slow] * 4, learner_envs=0)  # steps of 0.4 s per pool
        envs.reset(seed=0)
        index, lost = next((i, p) for i, p in enumerate(envs.pools) if p["node"] in nodes["others"])
        envs.step(np.zeros(4, dtype=np.int64))
        threading.Timer(0.1, kill_node, [lost["node"]]).start()  # while the next step is out
        start = time.monotonic()
        with pytest.raises(WorkerDiedError, match=f"pool {index} \\(node {lost['node']} at {lost['address']}"):
            envs.step(np.zeros(4, dtype=np.int64))
        assert time.monotonic() - start < 3.2
        assert not left_after(5, lambda: [p for p in [lost["pid"], *lost["workers"]] if alive(p)])
        assert not left_after(5, lambda: segments_of(lost["pid"]))
        envs.close()
