"""The protocol between the learner and its workers, named once: the commands
a learner posts in a worker slot, a worker's life states and command outcomes
(the C core's enums in shm/rv_layout.h, as Python names), and the heartbeat
timings each side judges the other by.

Every module above speaks through these names instead of ``lib.RV_*``, so a
reader finds the protocol in one place, and the two sides' timings cannot
drift apart: each side stamps its heartbeat every ``HEARTBEAT_NS`` from a C
thread (the GIL cannot stall it); the other gives up on it after many missed
stamps, never one late one.
"""

from __future__ import annotations

from .._core import lib

# Commands (rv_worker_slot_t.cmd).
CMD_STEP = lib.RV_CMD_STEP  # step every env of the worker with the action arrays
CMD_RESET = lib.RV_CMD_RESET  # reset: seeds, options and mask in the worker's mailbox
CMD_CALL = lib.RV_CMD_CALL  # call, get_attr, set_attr, render: the request in the mailbox
CMD_CLOSE = lib.RV_CMD_CLOSE  # close the envs and exit
CMD_DRAIN = lib.RV_CMD_DRAIN  # async: step or reset the env ids queued in the worker's ring

# A worker's life (rv_worker_slot_t.state).
WORKER_STARTING = lib.RV_WORKER_STARTING
WORKER_READY = lib.RV_WORKER_READY  # its envs are built: it waits for commands
WORKER_EXITED = lib.RV_WORKER_EXITED  # it left on its own (told to close, or its learner was gone)
WORKER_DEAD = lib.RV_WORKER_DEAD  # a signal or an unexpected exit ended it

# The outcome of a worker's last command (rv_worker_slot_t.status).
STATUS_OK = lib.RV_STATUS_OK
STATUS_ERROR = lib.RV_STATUS_ERROR  # the mailbox holds an encoded exception

#: How often both sides stamp their heartbeats (the learner's in the header,
#: each worker's in its slot), busy or not.
HEARTBEAT_NS = 100_000_000
#: A worker leaves once the learner's heartbeat is older than this: its
#: learner died without a word (SIGKILL, the OOM killer) or froze.
LEARNER_GONE_NS = 1_500_000_000
#: The learner kills and reports a worker whose heartbeat is older than this,
#: a frozen process or a paused container.
WORKER_SILENT_NS = 2_000_000_000
