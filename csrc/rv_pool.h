/*
 * rv_pool.h - the command/completion protocol between a learner and its
 * workers, on one segment (shm/rv_layout.h). How either side sleeps and
 * wakes the other is rv_signal.h; async batches are rv_blocks.h.
 *
 *   learner                               worker w
 *   write actions / mailbox
 *   rv_dispatch(w...)  --cmd_seq[w]++-->  rv_worker_wait() returns
 *                                         step envs, write results in place
 *   rv_wait_done()     <--done_count++--  rv_worker_done()
 *
 * Waiting spins for at most spin_ns, then sleeps on a futex. A sleeper
 * raises a `sleeping` flag first, so the other side pays for a wake syscall
 * only when somebody actually sleeps, and a batch costs at most one wake per
 * worker and one for the learner. Every wait has a timeout.
 */
#ifndef RV_POOL_H
#define RV_POOL_H

#include <stdint.h>

#include "rv_futex.h"
#include "rv_layout.h"

/* Learner only, one thread. Gives command `cmd` with request length
 * `cmd_len` to each of the n workers listed; everything written to the
 * segment before the call is visible to them. `slots` is the learner's own
 * pointer to the slot array (never recomputed from the header, which any
 * worker can write). Never blocks. */
void rv_dispatch(rv_worker_slot_t *slots, const uint32_t *workers, uint32_t n,
                 uint32_t cmd, uint64_t cmd_len);

/* Learner only, one thread. Waits until done_count reaches `target`
 * (wrap-safe) -> RV_OK; or fault_count differs from `faults_seen` ->
 * RV_FAULT; or timeout_ns passes (< 0: never) -> RV_TIMEOUT. Spins at most
 * spin_ns first. Blocks; call with the GIL released (cffi does). */
int rv_wait_done(rv_header_t *h, uint32_t target, uint32_t faults_seen,
                 int64_t spin_ns, int64_t timeout_ns);

/* What a worker's wait saw: the command, and what its rhythm learns from it. */
typedef struct rv_wait_seen {
  uint32_t seq;         /* the new cmd_seq */
  uint32_t asleep;      /* 1: the command found the worker in a futex (the learner paid a wake) */
  int64_t doze_late_ns; /* how long past its planned end the doze's timer woke the worker; -1: no timer wake */
  int64_t stolen_ns;    /* time the spin lost to other threads (pauses over 30 us): its CPU is wanted */
} rv_wait_seen_t;

/* Worker w only. Waits until its cmd_seq differs from last_seq: first
 * dozes doze_ns on a timer (a command wakes it early), then spins at most
 * spin_ns, yielding the CPU at each clock read, then sleeps until a command
 * or until timeout_ns from the call (< 0: never). -> RV_OK, or RV_TIMEOUT
 * (seen->seq untouched). *seen says what the wait saw. A sleep of either
 * kind raises `sleeping`, so the learner's doorbell wakes it (and counts in
 * s->woken). Refreshes the worker's heartbeat. Blocks. */
int rv_worker_wait(rv_worker_slot_t *s, uint32_t last_seq, int64_t doze_ns, int64_t spin_ns,
                   int64_t timeout_ns, rv_wait_seen_t *seen);

/* Worker w only, after finishing command `seq`: publishes status (an error
 * also bumps h->error_count, so the learner checks one word per batch), reply
 * length and every result written before the call, then counts `n` commands
 * done (more than 1 when doorbells of async sends coalesced) and wakes the
 * learner if that reaches what it awaits. Never blocks. */
void rv_worker_done(rv_header_t *h, rv_worker_slot_t *s, uint32_t seq,
                    uint32_t status, uint64_t reply_len, uint32_t n);

/* Any process (the reaper of a dead worker). Records that a fault happened
 * and wakes the learner. Never blocks. */
void rv_report_fault(rv_header_t *h);

#endif /* RV_POOL_H */
