"""Looking at running pools from outside them: counters (``monitor``, behind
``rock-vec ps``/``top``), Prometheus metrics (``metrics``), frames
(``watch``, ``tiles``). Reads segments; never writes what a pool relies on,
bar the frame requests of one watcher.
"""
