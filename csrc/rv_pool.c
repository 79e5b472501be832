#define _GNU_SOURCE
#include "rv_pool.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "rv_atomic.h"
#include "rv_spsc_ring.h"

/* True once counter `value` has reached `target` modulo 2^32. */
static inline int rv_reached(uint32_t value, uint32_t target) {
  return (int32_t)(value - target) >= 0;
}

/* Remaining time before `deadline` (0: none), or -1 for "no limit". */
static inline int64_t rv_remaining(uint64_t deadline) {
  if (deadline == 0) return -1;
  uint64_t now = rv_now_ns();
  return now >= deadline ? 0 : (int64_t)(deadline - now);
}

void rv_dispatch(rv_worker_slot_t *slots, const uint32_t *workers, uint32_t n,
                 uint32_t cmd, uint64_t cmd_len) {
  for (uint32_t i = 0; i < n; i++) {
    rv_worker_slot_t *s = &slots[workers[i]];
    rv_store_relaxed(&s->cmd, cmd);
    rv_store_relaxed(&s->cmd_len, cmd_len);
    /* Publishes cmd, cmd_len and the actions/mailbox; pairs with the
     * acquire load in rv_worker_wait. seq_cst: Dekker pair with the
     * worker's store to `sleeping` followed by its load of cmd_seq. */
    rv_store_seq_cst(&s->cmd_seq, s->cmd_seq + 1);
    if (rv_load_seq_cst(&s->sleeping)) rv_futex_wake(&s->cmd_seq, 1);
  }
}

/* What the learner waits for: `ready(ctx, order)` loads with `order`
 * (acquire while spinning, seq_cst in the Dekker re-check). */
typedef int (*rv_ready_fn)(const void *ctx, int order);

/* The learner's wait: spin up to spin_ns, then futex-sleep on wake_seq until
 * ready, a fault, or the timeout. Workers bump wake_seq only when they see
 * learner_sleeping, so the flag is raised, then readiness re-checked. */
static int rv_learner_wait(rv_header_t *h, rv_ready_fn ready, const void *ctx, uint32_t faults_seen,
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
    if (now < spin_until) continue;

    uint32_t wake = rv_load_acquire(&h->wake_seq);
    /* Dekker pair with the workers: we raise the flag then re-check; a
     * worker publishes then checks the flag. */
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

int rv_worker_wait(rv_worker_slot_t *s, uint32_t last_seq, int64_t spin_ns,
                   int64_t timeout_ns, uint32_t *seq_out) {
  uint64_t start = rv_now_ns();
  uint64_t deadline = timeout_ns < 0 ? 0 : start + (uint64_t)timeout_ns + 1;
  uint64_t spin_until = start + (uint64_t)(spin_ns > 0 ? spin_ns : 0);
  rv_store_relaxed(&s->heartbeat_ns, start);
  for (uint32_t iter = 0;; iter++) {
    /* Acquire: pairs with the seq_cst store in rv_dispatch. */
    uint32_t seq = rv_load_acquire(&s->cmd_seq);
    if (seq != last_seq) { *seq_out = seq; return RV_OK; }
    if (spin_ns > 0 && (iter & 63) != 63) { rv_cpu_relax(); continue; } /* no budget: sleep at once */
    uint64_t now = rv_now_ns();
    if (deadline && now >= deadline) return RV_TIMEOUT;
    if (now < spin_until) continue;

    rv_store_seq_cst(&s->sleeping, 1);
    if (rv_load_seq_cst(&s->cmd_seq) == last_seq)
      rv_futex_wait(&s->cmd_seq, last_seq, rv_remaining(deadline));
    rv_store_relaxed(&s->sleeping, 0);
    iter = 62; /* re-check now (and the deadline right after) */
  }
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
  if (rv_reached(now_done, rv_load_relaxed(&h->done_target)) &&
      rv_load_seq_cst(&h->learner_sleeping)) {
    rv_fetch_add_release(&h->wake_seq, 1);
    rv_futex_wake(&h->wake_seq, INT_MAX);
  }
}

uint32_t rv_claim_row(rv_header_t *h, uint32_t rows) {
  /* The counter stays below `rows` (a plain modulo would jump when a u32
   * wraps, since `rows` need not divide 2^32). Acquire: orders our writes to
   * the row after the learner's release of its block and after the previous
   * claimer's writes; release: passes our claim on to the next claimer. */
  uint32_t cur = rv_load_relaxed(&h->rows_claimed), row, next;
  do {
    row = cur < rows ? cur : cur % rows; /* a counter written over by a worker still names a row */
    next = row + 1 >= rows ? 0 : row + 1;
  } while (!__atomic_compare_exchange_n(&h->rows_claimed, &cur, next, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED));
  return row;
}

void rv_row_done(rv_header_t *h, uint32_t *fills, uint32_t row, uint32_t batch) {
  uint32_t block = row / batch;
  /* Release: publishes the row's results; pairs with the acquire load in
   * rv_wait_block. seq_cst for the Dekker pair with learner_sleeping. */
  uint32_t filled = rv_fetch_add_seq_cst(&fills[block * RV_FILL_STRIDE], 1) + 1;
  if (filled == batch && rv_load_seq_cst(&h->block_waited) == block &&
      rv_load_seq_cst(&h->learner_sleeping)) {
    rv_fetch_add_release(&h->wake_seq, 1);
    rv_futex_wake(&h->wake_seq, INT_MAX);
  }
}

typedef struct { uint32_t *fill; uint32_t batch; } rv_block_ctx;

static int rv_block_ready(const void *ctx, int order) {
  const rv_block_ctx *c = ctx;
  /* Acquire: pairs with the seq_cst RMW in rv_row_done (the rows' results). */
  return __atomic_load_n(c->fill, order) == c->batch;
}

int rv_wait_block(rv_header_t *h, uint32_t *fills, uint32_t block, uint32_t batch,
                  uint32_t faults_seen, int64_t spin_ns, int64_t timeout_ns) {
  /* seq_cst: a worker that sees learner_sleeping must also see this block. */
  rv_store_seq_cst(&h->block_waited, block);
  rv_block_ctx ctx = {&fills[block * RV_FILL_STRIDE], batch};
  return rv_learner_wait(h, rv_block_ready, &ctx, faults_seen, spin_ns, timeout_ns);
}

void rv_release_block(uint32_t *fills, uint32_t block) {
  /* Release: our reads of the block happen before any reuse; the next
   * claim in this block is ordered after it through rv_send's ring push. */
  rv_store_release(&fills[block * RV_FILL_STRIDE], 0);
}

int rv_send(rv_worker_slot_t *slots, void **rings, uint64_t capacity, const uint32_t *workers,
            const uint32_t *counts, uint32_t n_workers, const uint64_t *ids) {
  int rc = RV_OK;
  for (uint32_t k = 0; k < n_workers; k++) {
    uint32_t w = workers[k];
    if (rv_spsc_ring_push_guarded((rv_spsc_ring_t *)rings[w], capacity, ids, counts[k]) != counts[k]) rc = RV_FULL;
    ids += counts[k];
    rv_worker_slot_t *s = &slots[w];
    rv_store_relaxed(&s->cmd, RV_CMD_DRAIN);
    /* Publishes the ring push and the actions; Dekker pair with `sleeping`. */
    rv_store_seq_cst(&s->cmd_seq, s->cmd_seq + 1);
    if (rv_load_seq_cst(&s->sleeping)) rv_futex_wake(&s->cmd_seq, 1);
  }
  return rc;
}

void rv_report_fault(rv_header_t *h) {
  rv_fetch_add_seq_cst(&h->fault_count, 1);
  rv_fetch_add_seq_cst(&h->wake_seq, 1);
  rv_futex_wake(&h->wake_seq, INT_MAX);
}

/* ---- learner heartbeat thread ---- */

typedef struct rv_heartbeat {
  rv_header_t *h;
  int64_t period_ns;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t stop_cv;
  int stop;
} rv_heartbeat_t;

static void *rv_heartbeat_main(void *arg) {
  rv_heartbeat_t *hb = arg;
  pthread_mutex_lock(&hb->lock);
  while (!hb->stop) {
    rv_store_release(&hb->h->learner_heartbeat_ns, rv_now_ns());
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += hb->period_ns % 1000000000;
    until.tv_sec += hb->period_ns / 1000000000 + until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    pthread_cond_timedwait(&hb->stop_cv, &hb->lock, &until);
  }
  pthread_mutex_unlock(&hb->lock);
  return NULL;
}

void *rv_heartbeat_start(rv_header_t *h, int64_t period_ns) {
  rv_heartbeat_t *hb = calloc(1, sizeof(*hb));
  if (!hb) return NULL;
  hb->h = h;
  hb->period_ns = period_ns > 0 ? period_ns : 100000000;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&hb->stop_cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&hb->lock, NULL);
  rv_store_release(&h->learner_heartbeat_ns, rv_now_ns());
  if (pthread_create(&hb->thread, NULL, rv_heartbeat_main, hb) != 0) {
    pthread_cond_destroy(&hb->stop_cv);
    pthread_mutex_destroy(&hb->lock);
    free(hb);
    return NULL;
  }
  return hb;
}

void rv_heartbeat_stop(void *heartbeat) {
  rv_heartbeat_t *hb = heartbeat;
  if (!hb) return;
  pthread_mutex_lock(&hb->lock);
  hb->stop = 1;
  pthread_cond_signal(&hb->stop_cv);
  pthread_mutex_unlock(&hb->lock);
  pthread_join(hb->thread, NULL);
  pthread_cond_destroy(&hb->stop_cv);
  pthread_mutex_destroy(&hb->lock);
  free(hb);
}
