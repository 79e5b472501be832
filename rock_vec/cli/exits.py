"""The exit codes every ``rock-vec`` command returns: 0 done, 1 failed, 2 usage error.

A module of their own so that the command modules and ``main`` share them
without importing one another.
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
