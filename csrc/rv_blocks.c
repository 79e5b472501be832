#include "rv_blocks.h"

#include "rv_atomic.h"
#include "rv_signal.h"
#include "rv_spsc_ring.h"

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
  if (filled == batch && rv_load_seq_cst(&h->block_waited) == block) rv_wake_learner(h);
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
    rv_ring_doorbell(s); /* publishes the ring push and the actions */
  }
  return rc;
}
