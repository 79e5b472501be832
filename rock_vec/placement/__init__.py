"""Where workers run: the machine's NUMA nodes, CPUs and GPUs (``topology``),
each worker's share of them (``plan``) and how many CPUs a pool may count on
(``cpus``). Below the worker program, which applies its own placement.
"""
