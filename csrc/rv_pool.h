/*
 * rv_pool.h - the command/completion protocol between a learner and its
 * workers, on one segment (shm/rv_layout.h).
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

/* Worker w only. Waits until its cmd_seq differs from last_seq and stores
 * the new value in *seq_out -> RV_OK, or until timeout_ns -> RV_TIMEOUT.
 * Refreshes the worker's heartbeat. Blocks. */
int rv_worker_wait(rv_worker_slot_t *s, uint32_t last_seq, int64_t spin_ns,
                   int64_t timeout_ns, uint32_t *seq_out);

/* Worker w only, after finishing command `seq`: publishes status (an error
 * also bumps h->error_count, so the learner checks one word per batch), reply
 * length and every result written before the call, then counts `n` commands
 * done (more than 1 when doorbells of async sends coalesced) and wakes the
 * learner if that reaches what it awaits. Never blocks. */
void rv_worker_done(rv_header_t *h, rv_worker_slot_t *s, uint32_t seq,
                    uint32_t status, uint64_t reply_len, uint32_t n);

/* ---- async batches: rows claimed by workers, blocks awaited by the learner ----
 *
 * The async output is a ring of `blocks` blocks of `batch` rows. A worker
 * that finished an env claims the next row (one atomic add), writes its
 * results into that row, then counts the row into its block's fill counter;
 * the learner hands a block over once it is full. The ring holds
 * num_envs + batch rows at least, so a claimed row never lands in a block
 * the learner has not released (an env has at most one step in flight). */

/* Any host of envs (workers, the learner's own share). Claims the next
 * output row; returns its index in the ring of `rows` rows, always below
 * `rows` even if a worker wrote over the counter. Any number of callers at
 * once. Never blocks. */
uint32_t rv_claim_row(rv_header_t *h, uint32_t rows);

/* Worker only, after writing row `row`: publishes it and counts it into its
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

/* Fill counters sit one per cache line. */
#define RV_FILL_STRIDE (RV_CACHE_LINE / sizeof(uint32_t))

/* Learner only. Appends env ids to each listed worker's SPSC ring and rings
 * its doorbell (RV_CMD_DRAIN). rings[w] points at worker w's ring, of
 * `capacity` slots (the learner's own number: see
 * rv_spsc_ring_push_guarded); ids are grouped per worker: counts[k] ids for
 * workers[k], in order. Returns RV_OK, or RV_FULL if a ring could not take
 * them (rings hold a worker's every env: a worker wrote over its ring).
 * Never blocks. */
int rv_send(rv_worker_slot_t *slots, void **rings, uint64_t capacity, const uint32_t *workers,
            const uint32_t *counts, uint32_t n_workers, const uint64_t *ids);

/* Any process (the reaper of a dead worker). Records that a fault happened
 * and wakes the learner. Never blocks. */
void rv_report_fault(rv_header_t *h);

/* Learner only. Starts a thread that stores CLOCK_MONOTONIC into
 * h->learner_heartbeat_ns every period_ns, so workers that cannot see the
 * learner's process can tell it is alive. Returns NULL on failure. */
void *rv_heartbeat_start(rv_header_t *h, int64_t period_ns);

/* Learner only. Stops and joins the heartbeat thread; call before unmapping
 * the segment. */
void rv_heartbeat_stop(void *heartbeat);

#endif /* RV_POOL_H */
