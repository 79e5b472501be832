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

/* How late past its timeout the kernel may end this thread's timed waits
 * (prctl PR_SET_TIMERSLACK; the default is 50 us, as long as a doze's whole
 * margin). The calling thread only. Returns RV_OK or RV_ERR. */
int rv_set_timer_slack(uint64_t ns);

/* Lets a runnable thread on this CPU run first (sched_yield), so a spinning
 * waiter never holds up the one it waits for: the scheduler does put the
 * learner and a worker on one CPU at times. Returns at once otherwise. */
void rv_yield(void);

/* The CPU the calling thread runs on now (sched_getcpu: read from the
 * kernel's per-thread rseq area, no syscall), or -1. Any caller. */
int rv_current_cpu(void);

/* Wake up to n sleepers on word. Any caller; never blocks. */
void rv_futex_wake(uint32_t *word, int n);

#endif /* RV_FUTEX_H */
