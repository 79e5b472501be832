/*
 * rv_signal.h - how one side of a segment wakes the other.
 *
 * Every wait spins for at most spin_ns, then sleeps on a futex. A sleeper
 * raises a `sleeping` flag first and re-checks its condition; a waker
 * publishes, then looks at the flag (a Dekker pair, all seq_cst), so a wake
 * syscall is paid only when somebody actually sleeps, and none is lost.
 *
 *   learner -> worker   rv_ring_doorbell: cmd_seq += 1, wake if sleeping
 *   worker -> learner   rv_wake_learner:  wake_seq += 1, wake if sleeping
 *   learner waits       rv_learner_wait:  on a readiness test, faults, a timeout
 *
 * Shared by the command protocol (rv_pool) and the async blocks (rv_blocks).
 */
#ifndef RV_SIGNAL_H
#define RV_SIGNAL_H

#include <stdint.h>

#include "rv_layout.h"
#include "rv_result.h"

/* True once counter `value` has reached `target` modulo 2^32. */
static inline int rv_reached(uint32_t value, uint32_t target) {
  return (int32_t)(value - target) >= 0;
}

/* Remaining time before `deadline` (0: none) by rv_now_ns, or -1 for "no limit". */
int64_t rv_remaining(uint64_t deadline);

/* Learner only. Hands worker slot `s` the command already written into it:
 * stamps cmd_ns with the time, bumps cmd_seq with a seq_cst store
 * (publishes everything written before, pairs with the acquire load in
 * rv_worker_wait), then a futex wake if the worker sleeps. Never blocks. */
void rv_ring_doorbell(rv_worker_slot_t *s);

/* Any host of envs, after a seq_cst publication the learner may be waiting
 * for: wakes it if it sleeps. Never blocks. */
void rv_wake_learner(rv_header_t *h);

/* What the learner waits for: `ready(ctx, order)` loads with `order`
 * (acquire while spinning, seq_cst in the Dekker re-check). */
typedef int (*rv_ready_fn)(const void *ctx, int order);

/* Learner only. Spins up to spin_ns, then futex-sleeps on wake_seq until
 * ready -> RV_OK, fault_count differs from faults_seen -> RV_FAULT, or
 * timeout_ns passes (< 0: never) -> RV_TIMEOUT. Blocks. */
int rv_learner_wait(rv_header_t *h, rv_ready_fn ready, const void *ctx, uint32_t faults_seen,
                    int64_t spin_ns, int64_t timeout_ns);

#endif /* RV_SIGNAL_H */
