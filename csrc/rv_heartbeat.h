/*
 * rv_heartbeat.h - a C thread that stamps a word of shared memory with
 * CLOCK_MONOTONIC, so that another process (or container) can tell this one
 * is alive without asking it. The GIL cannot stall it.
 *
 * The learner beats header.learner_heartbeat_ns: workers that nothing else
 * can signal (containers, a stopped fork server) leave when it goes stale.
 * A worker beats its slot's heartbeat_ns: the learner tells a frozen worker
 * (a paused container, a stopped process) from one busy in a long step.
 */
#ifndef RV_HEARTBEAT_H
#define RV_HEARTBEAT_H

#include <stdint.h>

/* Any process, for a word it owns. Starts a thread that stores rv_now_ns()
 * into *word every period_ns (<= 0: 100 ms), the first time at once.
 * Returns a handle for rv_heartbeat_stop, or NULL on failure. */
void *rv_heartbeat_start(uint64_t *word, int64_t period_ns);

/* The starter only. Stops and joins the thread; call before unmapping the
 * word. NULL is ignored. */
void rv_heartbeat_stop(void *heartbeat);

#endif /* RV_HEARTBEAT_H */
