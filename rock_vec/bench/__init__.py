"""Benchmarks: rock_vec measured as users meet it, next to its peers. Above
every face: it builds them as users do and times them from outside.

The modules, each importing only those above it in this list:

- ``workloads``: the envs measured (``Workload``, ``WORKLOADS``);
- ``peers``: the peers' factories (gymnasium, SB3, EnvPool, PufferLib);
- ``rllib_runner``: RLlib's EnvRunner as a Ray actor, and its factories;
- ``runners``: every runner by name (``Runner``, ``RUNNER_SPECS``), rock_vec's
  own layouts, whether one can run here, building its envs;
- ``drivers``: one round of each runner's API (``Drive``, ``start``);
- ``timing``: steps/s of a runner (``measure``), a docker pool's start;
- ``groups``: runners side by side (``Group``, ``Target``) and their rows;
- ``policies``: torch policies for the training loops;
- ``suites``: the suites of ``rock-vec bench`` and ``run_groups``;
- ``train_loops``: training loops as users run them, rock_vec against Sync;
- ``plot``: ``rock-vec bench --plot`` as one PNG chart.
"""
