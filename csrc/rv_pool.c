#define _GNU_SOURCE
#include "rv_pool.h"

#include <limits.h>

#include "rv_atomic.h"
#include "rv_signal.h"

void rv_dispatch(rv_worker_slot_t *slots, const uint32_t *workers, uint32_t n,
                 uint32_t cmd, uint64_t cmd_len) {
  for (uint32_t i = 0; i < n; i++) {
    rv_worker_slot_t *s = &slots[workers[i]];
    rv_store_relaxed(&s->cmd, cmd);
    rv_store_relaxed(&s->cmd_len, cmd_len);
    /* Publishes cmd, cmd_len and the actions/mailbox. */
    rv_ring_doorbell(s);
  }
}

typedef struct { uint32_t *count; uint32_t target; } rv_done_ctx;

static int rv_done_ready(const void *ctx, int order) {
  const rv_done_ctx *c = ctx;
  /* Acquire: pairs with the release RMW in rv_worker_done, so the
   * workers' results are visible once the count is seen. */
  return rv_reached(__atomic_load_n(c->count, order), c->target);
}

int rv_wait_done(rv_header_t *h, uint32_t target, uint32_t faults_seen,
                 int64_t spin_ns, int64_t timeout_ns) {
  rv_store_relaxed(&h->done_target, target);
  rv_done_ctx ctx = {&h->done_count, target};
  return rv_learner_wait(h, rv_done_ready, &ctx, faults_seen, spin_ns, timeout_ns);
}

/* Sleeps on cmd_seq while it is last_seq, at most timeout_ns (< 0: no
 * limit), the `sleeping` flag up (Dekker pair with rv_ring_doorbell).
 * Returns 1 if a command came (*asleep set when it came during the sleep),
 * 0 if it did not. */
static int rv_worker_sleep(rv_worker_slot_t *s, uint32_t last_seq, int64_t timeout_ns, uint32_t *asleep) {
  rv_store_seq_cst(&s->sleeping, 1);
  int slept = rv_load_seq_cst(&s->cmd_seq) == last_seq;
  int rc = slept ? rv_futex_wait(&s->cmd_seq, last_seq, timeout_ns) : RV_OK;
  rv_store_relaxed(&s->sleeping, 0);
  /* Acquire: pairs with the seq_cst store in rv_ring_doorbell. */
  if (rv_load_acquire(&s->cmd_seq) == last_seq) return 0;
  *asleep = slept && rc == RV_OK;
  return 1;
}

/* 64 spin iterations and a yield take a few us: a longer pause between two
 * clock reads means another thread had the CPU. */
#define RV_STOLEN_NS 30000

int rv_worker_wait(rv_worker_slot_t *s, uint32_t last_seq, int64_t doze_ns, int64_t spin_ns,
                   int64_t timeout_ns, rv_wait_seen_t *seen) {
  uint64_t start = rv_now_ns();
  uint64_t deadline = timeout_ns < 0 ? 0 : start + (uint64_t)timeout_ns + 1;
  rv_store_relaxed(&s->heartbeat_ns, start);
  seen->asleep = 0;
  seen->doze_late_ns = -1;
  seen->stolen_ns = 0;
  if (doze_ns > 0) {
    uint64_t doze_until = start + (uint64_t)doze_ns;
    if (deadline && doze_until > deadline) doze_until = deadline;
    if (rv_worker_sleep(s, last_seq, rv_remaining(doze_until), &seen->asleep)) goto got;
    uint64_t now = rv_now_ns();
    if (now >= doze_until) seen->doze_late_ns = (int64_t)(now - doze_until);
  }
  uint64_t checked = rv_now_ns(), spin_until = checked + (uint64_t)(spin_ns > 0 ? spin_ns : 0);
  for (uint32_t iter = 0;; iter++) {
    /* Acquire: pairs with the seq_cst store in rv_ring_doorbell. */
    if (rv_load_acquire(&s->cmd_seq) != last_seq) goto got;
    if (spin_ns > 0 && (iter & 63) != 63) { rv_cpu_relax(); continue; } /* no budget: sleep at once */
    uint64_t now = rv_now_ns();
    if (now - checked > RV_STOLEN_NS && now <= spin_until) seen->stolen_ns += (int64_t)(now - checked);
    checked = now;
    if (deadline && now >= deadline) return RV_TIMEOUT;
    if (now < spin_until) { rv_yield(); continue; }
    if (rv_worker_sleep(s, last_seq, rv_remaining(deadline), &seen->asleep)) goto got;
    iter = 62; /* re-check the deadline at once */
  }
got:
  seen->seq = rv_load_acquire(&s->cmd_seq);
  if (seen->asleep) rv_store_relaxed(&s->woken, s->woken + 1);
  return RV_OK;
}

void rv_worker_done(rv_header_t *h, rv_worker_slot_t *s, uint32_t seq,
                    uint32_t status, uint64_t reply_len, uint32_t n) {
  rv_store_relaxed(&s->status, status);
  rv_store_relaxed(&s->reply_len, reply_len);
  if (status != RV_STATUS_OK) rv_fetch_add_release(&h->error_count, 1);
  rv_store_release(&s->done_seq, seq);
  /* Release: publishes every result written for this command; pairs with
   * the acquire load of done_count in rv_wait_done. seq_cst for the Dekker
   * pair with learner_sleeping. */
  uint32_t now_done = rv_fetch_add_seq_cst(&h->done_count, n) + n;
  if (rv_reached(now_done, rv_load_relaxed(&h->done_target))) rv_wake_learner(h);
}

void rv_report_fault(rv_header_t *h) {
  rv_fetch_add_seq_cst(&h->fault_count, 1);
  rv_fetch_add_seq_cst(&h->wake_seq, 1);
  rv_futex_wake(&h->wake_seq, INT_MAX);
}
