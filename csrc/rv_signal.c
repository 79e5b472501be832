#include "rv_signal.h"

#include <limits.h>

#include "rv_atomic.h"
#include "rv_futex.h"

int64_t rv_remaining(uint64_t deadline) {
  if (deadline == 0) return -1;
  uint64_t now = rv_now_ns();
  return now >= deadline ? 0 : (int64_t)(deadline - now);
}

void rv_ring_doorbell(rv_worker_slot_t *s) {
  rv_store_relaxed(&s->cmd_ns, rv_now_ns()); /* published by the bump below */
  /* seq_cst: Dekker pair with the worker's store to `sleeping` followed by
   * its load of cmd_seq. */
  rv_store_seq_cst(&s->cmd_seq, s->cmd_seq + 1);
  if (rv_load_seq_cst(&s->sleeping)) rv_futex_wake(&s->cmd_seq, 1);
}

void rv_wake_learner(rv_header_t *h) {
  if (rv_load_seq_cst(&h->learner_sleeping)) {
    rv_fetch_add_release(&h->wake_seq, 1);
    rv_futex_wake(&h->wake_seq, INT_MAX);
  }
}

int rv_learner_wait(rv_header_t *h, rv_ready_fn ready, const void *ctx, uint32_t faults_seen,
                    int64_t spin_ns, int64_t timeout_ns) {
  uint64_t start = rv_now_ns();
  uint64_t deadline = timeout_ns < 0 ? 0 : start + (uint64_t)timeout_ns + 1;
  uint64_t spin_until = start + (uint64_t)(spin_ns > 0 ? spin_ns : 0);
  for (uint32_t iter = 0;; iter++) {
    if (ready(ctx, __ATOMIC_ACQUIRE)) return RV_OK;
    if (rv_load_acquire(&h->fault_count) != faults_seen) return RV_FAULT;
    if (spin_ns > 0 && (iter & 63) != 63) { rv_cpu_relax(); continue; } /* no budget: sleep at once */
    uint64_t now = rv_now_ns();
    if (deadline && now >= deadline) return RV_TIMEOUT;
    if (now < spin_until) { rv_yield(); continue; }

    uint32_t wake = rv_load_acquire(&h->wake_seq);
    /* Dekker pair with rv_wake_learner: we raise the flag then re-check; a
     * waker publishes then checks the flag. */
    rv_store_seq_cst(&h->learner_sleeping, 1);
    if (ready(ctx, __ATOMIC_SEQ_CST) || rv_load_seq_cst(&h->fault_count) != faults_seen) {
      rv_store_relaxed(&h->learner_sleeping, 0);
      continue;
    }
    int rc = rv_futex_wait(&h->wake_seq, wake, rv_remaining(deadline));
    rv_store_relaxed(&h->learner_sleeping, 0);
    if (rc == RV_TIMEOUT) iter = 62; /* re-check once, then report */
  }
}
