"""The worker side: the program every worker process runs (``program``;
``python -m rock_vec.worker``), hosting a slice of the envs (``hosting``, also
used by the learner for its own share), the wait that follows the learner's
rhythm (``rhythm``), frames for ``rock-vec watch`` (``frames``), and the
rule for the learner's main module (``main_module``).
"""
