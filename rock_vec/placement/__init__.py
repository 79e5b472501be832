"""Where workers run: the machine's NUMA nodes, CPUs and GPUs (``topology``)
and each worker's share of them (``plan``). Below the worker program, which
applies its own placement.
"""
