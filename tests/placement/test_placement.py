"""Topology from sysfs and NVML, and the placement plan, on this machine and
on sysfs trees of bigger machines kept as test data (tests/data)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import rock_vec
from rock_vec.cli import main as cli
from rock_vec.cli.topology import plan_command, topology_command
from rock_vec.placement import plan as placement, topology
from rock_vec.placement.topology import format_cpulist, parse_cpulist

DATA = Path(__file__).resolve().parents[1] / "data"


def machine(tmp_path, name, allowed=None):
    """The topology of a machine recorded as test data, as sysfs files under tmp_path."""
    tree = json.loads((DATA / f"sysfs_{name}.json").read_text())["sysfs"]
    for rel, content in tree.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    return topology.read(tmp_path, allowed=allowed)


def test_cpulists_parse_and_format_as_the_kernel_writes_them():
    assert parse_cpulist("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert format_cpulist([5, 0, 1, 2, 8, 9]) == "0-2,5,8-9" and format_cpulist([]) == ""


def test_this_machines_topology_covers_exactly_the_cpus_this_process_may_use():
    top = topology.read()
    assert top.allowed == frozenset(os.sched_getaffinity(0))
    usable = [c for core in top.usable_cores() for c in core.cpus]
    assert sorted(usable) == sorted(top.allowed) and len(set(usable)) == len(usable)
    assert set(top.allowed) <= {c for cpus in top.nodes.values() for c in cpus}


def test_a_gpus_workers_get_whole_cores_of_its_node_and_the_learner_its_first_core(tmp_path):
    top = machine(tmp_path, "two_sockets_eight_gpus")
    assert sorted(top.nodes) == [0, 1] and len(top.cores) == 64 and len(top.allowed) == 128
    assert all(len(core.cpus) == 2 and core.cpus[1] == core.cpus[0] + 64 for core in top.cores)
    assert [g.node for g in top.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert top.gpu("0000:90:00.0") == top.gpu(5) == top.gpu("5")
    plan = placement.plan(top, 8, gpu=5)
    assert plan.node == 1 and plan.gpu.bus_id == "0000:90:00.0"
    assert plan.learner_cpus == (32, 96)  # the node's first core, both threads
    for cpus, mems in zip(plan.workers, plan.mems):
        assert len(cpus) == 2 and cpus[1] == cpus[0] + 64 and 32 <= cpus[0] < 64 and mems == (1,)
    assert len({c for cpus in plan.workers for c in cpus}) == 16 and not plan.notes


def test_workers_spill_to_the_other_node_only_when_theirs_is_full(tmp_path):
    top = machine(tmp_path, "two_sockets_eight_gpus")
    plan = placement.plan(top, 40, gpu=0)
    on_node = [w for w, mems in enumerate(plan.mems) if mems == (0,)]
    assert len(on_node) == 31 and all(m == (1,) for m in plan.mems[31:])
    assert any("too few free cores: workers also on node(s) 1" in n for n in plan.notes)
    assert len({cpus for cpus in plan.workers}) == 40  # still no two workers on one core


def test_four_nodes_spill_to_the_nearest_node_first(tmp_path):
    top = machine(tmp_path, "four_nodes")
    assert sorted(top.nodes) == [0, 1, 2, 3] and all(len(c.cpus) == 1 for c in top.cores)
    assert top.distances[0] == (10, 11, 20, 20)
    plan = placement.plan(top, 20)
    assert plan.node == 0 and plan.learner_cpus == (0,)
    assert [m[0] for m in plan.mems] == [0] * 15 + [1] * 5  # node 1 (distance 11) before 2 and 3 (20)


def test_a_plan_that_cannot_be_made_says_why(tmp_path):
    top = machine(tmp_path, "two_sockets_eight_gpus", allowed=range(0, 16))
    with pytest.raises(ValueError, match=r"no GPU 9 on this machine; GPUs: 0 \(0000:07:00.0\), 1 \(0000:0f:00.0\)"):
        placement.plan(top, 2, gpu=9)
    with pytest.raises(ValueError, match=r"cpus 16-17 are not usable by this process \(it may use 0-15\)"):
        placement.plan(top, 2, cpus=[14, 15, 16, 17])
    with pytest.raises(ValueError, match=r"20 workers with pinning forced, but 15 free core\(s\)"):
        placement.plan(top, 20, strict=True)
    shared = placement.plan(top, 20)
    assert "20 workers on 15 free core(s): some share a core" in shared.notes


def test_the_commands_print_topology_and_plan_readably(tmp_path, capsys):
    machine(tmp_path, "two_sockets_eight_gpus")
    assert topology_command(str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "2 NUMA node(s), 64 cores, 128 CPUs" in out and "node 1: cpus 32-63,96-127, 32 cores  distances 21 10" in out
    assert "GPU 5: 0000:90:00.0, node 1, local cpus 32-63,96-127" in out

    class Args:
        workers, gpu, learner_cores, strict, cpus = 2, "5", 1, False, None

    assert plan_command(Args, str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == ["node 1, GPU 5 (0000:90:00.0)", "learner    cpus 32,96",
                                    "worker 0   cpus 33,97        memory on node 1"]
    assert cli.main(["topology"]) == 0 and cli.main(["plan", "--workers", "1"]) == 0
    assert cli.main(["plan", "--workers", "1", "--gpu", "9"]) == 2
    assert "rock-vec plan: error: no GPU 9 on this machine" in capsys.readouterr().err


def test_a_numa_placed_pool_pins_its_workers_where_the_plan_says():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, num_workers=1, placement="numa")
    try:
        plan = envs.placement
        assert plan is not None and len(plan.workers) == 1
        assert os.sched_getaffinity(envs.worker_pids[0]) == set(plan.workers[0])
        envs.reset(seed=0)
        assert envs.step(np.zeros(4, np.int64))[0].shape == (4, 4)
    finally:
        envs.close()


def test_a_cpu_count_sizes_the_split_and_pins_nothing():
    envs = rock_vec.make_vec("CartPole-v1", num_envs=8, cpus=3)
    try:
        # three CPUs: the learner's share and two workers, whatever this machine has
        assert envs.num_workers == 2 and envs.split.learner_envs > 0 and envs.placement is None
        assert all(os.sched_getaffinity(pid) == os.sched_getaffinity(0) for pid in envs.worker_pids)
    finally:
        envs.close()


def test_cpu_ids_confine_the_workers_to_them():
    mine = sorted(os.sched_getaffinity(0))
    envs = rock_vec.make_vec("CartPole-v1", num_envs=4, num_workers=2, cpus=[mine[-1]])
    try:
        assert [os.sched_getaffinity(pid) for pid in envs.worker_pids] == [{mine[-1]}] * 2
        assert envs.placement.describe().startswith("confined to cpus")
        envs.reset(seed=0)
        assert envs.step(np.zeros(4, np.int64))[0].shape == (4, 4)
    finally:
        envs.close()


@pytest.mark.parametrize("cpus, message", [
    (0, "cpus must be an int >= 1 or None, got 0"),
    ([], "cpus must be a count or CPU ids"),
    (["a"], "cpus must be a count or CPU ids"),
    ([10_000], "cpus 10000 are not usable by this process"),
])
def test_bad_cpus_get_clear_errors(cpus, message):
    with pytest.raises(ValueError, match=message):
        rock_vec.make_vec("CartPole-v1", num_envs=2, num_workers=1, cpus=cpus)
