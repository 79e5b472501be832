/*
 * rv_blocks.h - async batches: rows claimed by the hosts of envs, blocks
 * awaited by the learner (EnvPool's send/recv), on one segment.
 *
 * The async output is a ring of `blocks` blocks of `batch` rows. A host that
 * finished an env claims the next row (a compare-and-swap), writes its
 * results into that row, then counts the row into its block's fill counter;
 * the learner hands a block over once it is full. The ring holds
 * num_envs + batch rows at least, so a claimed row never lands in a block
 * the learner has not released (an env has at most one step in flight).
 */
#ifndef RV_BLOCKS_H
#define RV_BLOCKS_H

#include <stdint.h>

#include "rv_layout.h"
#include "rv_result.h"

/* Fill counters sit one per cache line. */
#define RV_FILL_STRIDE (RV_CACHE_LINE / sizeof(uint32_t))

/* Any host of envs (workers, the learner's own share). Claims the next
 * output row; returns its index in the ring of `rows` rows, always below
 * `rows` even if a worker wrote over the counter. Any number of callers at
 * once. Never blocks. */
uint32_t rv_claim_row(rv_header_t *h, uint32_t rows);

/* Any host of envs, after writing row `row`: publishes it and counts it into its
 * block's fill counter (fills[block * RV_FILL_STRIDE]); wakes the learner if
 * that completed the block it waits for. Never blocks. */
void rv_row_done(rv_header_t *h, uint32_t *fills, uint32_t row, uint32_t batch);

/* Learner only. Waits until block `block` holds `batch` rows -> RV_OK, a
 * fault -> RV_FAULT, or the timeout -> RV_TIMEOUT; then the caller reads
 * the block and calls rv_release_block. Blocks. */
int rv_wait_block(rv_header_t *h, uint32_t *fills, uint32_t block, uint32_t batch,
                  uint32_t faults_seen, int64_t spin_ns, int64_t timeout_ns);

/* Learner only, once it has read a block: empties its fill counter. */
void rv_release_block(uint32_t *fills, uint32_t block);

/* Learner only. Appends env ids to each listed worker's SPSC ring and rings
 * its doorbell (RV_CMD_DRAIN). rings[w] points at worker w's ring, of
 * `capacity` slots (the learner's own number: see
 * rv_spsc_ring_push_guarded); ids are grouped per worker: counts[k] ids for
 * workers[k], in order. Returns RV_OK, or RV_FULL if a ring could not take
 * them (rings hold a worker's every env: a worker wrote over its ring).
 * Never blocks. */
int rv_send(rv_worker_slot_t *slots, void **rings, uint64_t capacity, const uint32_t *workers,
            const uint32_t *counts, uint32_t n_workers, const uint64_t *ids);

#endif /* RV_BLOCKS_H */
