/*
 * rv_layout.h - the fixed part of a rock_vec shared-memory segment.
 *
 * Both sides include this header: the learner (through cffi), the worker
 * program (Python, through the same cffi module) and any non-Python worker.
 * shm/FORMAT.md describes every byte; this file is the layout as code.
 *
 *   offset 0            rv_header_t            (5 cache lines)
 *   header.workers_off  rv_worker_slot_t[num_workers]
 *   header.manifest_off JSON manifest: every array's name, dtype, shape, offset
 *   ...                 arrays, each 64-byte aligned (offsets in the manifest)
 *
 * Each worker slot gives the learner's fields, the worker's and the reaper's
 * a cache line each, so a worker finishing a step never invalidates the line
 * the learner publishes commands on. In the header, two lines are shared on
 * purpose: line 2 holds the workers' done_count next to the learner's
 * done_target and learner_sleeping (a worker reads all three at the end of
 * every command: one line to fetch, not three), and line 4 the workers'
 * rows_claimed next to the learner's block_waited (read together by the
 * worker that fills a block).
 */
#ifndef RV_LAYOUT_H
#define RV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define RV_MAGIC 0x31304745535652ULL /* "RVSEG01\0" little-endian */
#define RV_FORMAT_VERSION 2u
#define RV_CACHE_LINE 64

/* Commands the learner gives a worker (rv_worker_slot_t.cmd). */
enum rv_cmd {
  RV_CMD_NONE = 0,
  RV_CMD_STEP = 1,  /* step every env of the worker with the action arrays */
  RV_CMD_RESET = 2, /* reset; seeds/options/mask in the worker's mailbox */
  RV_CMD_CALL = 3,  /* call/get_attr/set_attr/render; request in mailbox */
  RV_CMD_CLOSE = 4, /* close the envs and exit */
  RV_CMD_DRAIN = 5, /* async: step/reset the env ids queued in the worker's ring */
};

/* Worker life states (rv_worker_slot_t.state). */
enum rv_worker_state {
  RV_WORKER_STARTING = 0,
  RV_WORKER_READY = 1,  /* envs built, waiting for commands */
  RV_WORKER_EXITED = 2, /* left on its own (close, lost learner) */
  RV_WORKER_DEAD = 3,   /* ended by a signal or an unexpected exit */
};

/* Outcome of the last command (rv_worker_slot_t.status). */
enum rv_status {
  RV_STATUS_OK = 0,
  RV_STATUS_ERROR = 1, /* the mailbox reply holds an encoded exception */
};

typedef struct rv_worker_slot {
  /* Line 0 - written by the learner. */
  uint32_t cmd_seq;  /* futex word: bumped (seq_cst store) to hand over a command */
  uint32_t cmd;      /* enum rv_cmd, written before cmd_seq */
  uint64_t cmd_len;  /* bytes of request in the mailbox */
  uint64_t cmd_ns;   /* CLOCK_MONOTONIC when cmd_seq was last bumped: the worker learns the learner's rhythm */
  uint8_t _pad0[RV_CACHE_LINE - 24];

  /* Line 1 - written by the worker. */
  uint32_t sleeping; /* 1 while futex-waiting on cmd_seq (Dekker pair) */
  uint32_t done_seq; /* = cmd_seq of the last finished command */
  uint32_t status;   /* enum rv_status of the last finished command */
  uint32_t state;    /* enum rv_worker_state */
  uint64_t reply_len;    /* bytes of reply in the mailbox */
  uint64_t heartbeat_ns; /* CLOCK_MONOTONIC, refreshed while waiting */
  uint64_t env_steps;    /* env steps taken (monitoring) */
  uint64_t busy_ns;      /* time spent inside commands (monitoring) */
  int32_t pid;           /* as seen by the worker itself */
  uint32_t woken;        /* commands that found the worker asleep, so the learner paid a wake (monitoring) */
  uint8_t _pad1[RV_CACHE_LINE - 56];

  /* Line 2 - written by whoever reaps the worker (launcher/server). */
  int32_t exit_code;   /* valid when state is EXITED or DEAD */
  int32_t exit_signal; /* 0 unless ended by a signal */
  int32_t host_pid;    /* pid in the learner's namespace */
  uint32_t restarts;   /* times this slot's worker was replaced */
  uint8_t _pad2[RV_CACHE_LINE - 16];
} rv_worker_slot_t;

typedef struct rv_header {
  /* Line 0 - written once by the learner at creation. */
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;  /* sizeof(rv_header_t) */
  uint64_t total_size;
  uint32_t num_envs;
  uint32_t num_workers;
  uint64_t workers_off;  /* rv_worker_slot_t[num_workers] */
  uint64_t manifest_off; /* JSON, manifest_len bytes */
  uint64_t manifest_len;
  uint8_t _pad0[RV_CACHE_LINE - 56];

  /* Line 1 - the learner's liveness. */
  uint64_t learner_heartbeat_ns; /* CLOCK_MONOTONIC, refreshed by a C thread */
  int32_t learner_pid;
  uint32_t closing; /* 1 once the learner started closing the pool */
  uint32_t learner_crowded; /* 1 while the learner's own other threads keep CPUs busy: workers sleep between commands */
  uint8_t _pad1[RV_CACHE_LINE - 20];

  /* Line 2 - completions: workers add, the learner waits. */
  uint32_t done_count;       /* +1 per finished command */
  uint32_t done_target;      /* done_count the sleeping learner waits for */
  uint32_t learner_sleeping; /* 1 while futex-waiting on wake_seq */
  uint32_t wake_seq;         /* futex word: bumped by a last completion or a fault */
  uint8_t _pad2[RV_CACHE_LINE - 16];

  /* Line 3 - failures: whoever sees a worker die bumps fault_count, then
   * wake_seq; a worker whose command raised bumps error_count. */
  uint32_t fault_count;
  uint32_t error_count;
  uint8_t _pad3[RV_CACHE_LINE - 8];

  /* Line 4 - async batches: workers claim output rows, one compare-and-swap each. */
  uint32_t rows_claimed; /* next output row to claim (mod async ring rows) */
  uint32_t block_waited; /* the block a sleeping learner waits to see full */
  uint8_t _pad4[RV_CACHE_LINE - 8];
} rv_header_t;

#define RV_HEADER_SIZE sizeof(rv_header_t)

_Static_assert(sizeof(rv_worker_slot_t) == 3 * RV_CACHE_LINE, "slot is 3 lines");
_Static_assert(offsetof(rv_worker_slot_t, sleeping) == RV_CACHE_LINE, "worker line");
_Static_assert(offsetof(rv_worker_slot_t, exit_code) == 2 * RV_CACHE_LINE, "reaper line");
_Static_assert(sizeof(rv_header_t) == 5 * RV_CACHE_LINE, "header is 5 lines");
_Static_assert(offsetof(rv_header_t, learner_heartbeat_ns) == RV_CACHE_LINE, "liveness line");
_Static_assert(offsetof(rv_header_t, done_count) == 2 * RV_CACHE_LINE, "done line");
_Static_assert(offsetof(rv_header_t, fault_count) == 3 * RV_CACHE_LINE, "fault line");
_Static_assert(offsetof(rv_header_t, rows_claimed) == 4 * RV_CACHE_LINE, "async line");

#endif /* RV_LAYOUT_H */
