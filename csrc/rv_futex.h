/*
 * rv_futex.h - process-shared futex wait/wake and the monotonic clock.
 *
 * The futexes are *shared* (no FUTEX_PRIVATE_FLAG): the word lives in a
 * mapping of /dev/shm that other processes and containers map too.
 */
#ifndef RV_FUTEX_H
#define RV_FUTEX_H

#include <stdint.h>

#include "rv_result.h"


/* CLOCK_MONOTONIC in nanoseconds; the same clock in every process and
 * container on the host. Any caller. */
uint64_t rv_now_ns(void);

/* Sleep while *word == expected, at most timeout_ns (< 0: no limit).
 * Returns RV_OK when woken or when *word already differed, RV_TIMEOUT at
 * the limit, RV_ERR for an invalid address. Spurious wakeups and EINTR return RV_OK: callers re-check
 * their condition. Any caller; blocks. */
int rv_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wake up to n sleepers on word. Any caller; never blocks. */
void rv_futex_wake(uint32_t *word, int n);

#endif /* RV_FUTEX_H */
