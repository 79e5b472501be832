#define _GNU_SOURCE
#include "rv_futex.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if !defined(__linux__)
#error "rock_vec's wait needs Linux futexes"
#endif

uint64_t rv_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int rv_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
  struct timespec ts, *tsp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    tsp = &ts;
  }
  /* Relative timeout: FUTEX_WAIT measures it on CLOCK_MONOTONIC. */
  long rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
  if (rc == -1 && errno == ETIMEDOUT) return RV_TIMEOUT;
  if (rc == -1 && (errno == EFAULT || errno == EINVAL)) return RV_ERR; /* a bad word: a bug */
  return RV_OK; /* woken, EAGAIN (value changed) or EINTR: re-check */
}

void rv_futex_wake(uint32_t *word, int n) {
  syscall(SYS_futex, word, FUTEX_WAKE, n < 0 ? INT_MAX : n, NULL, NULL, 0);
}

int rv_set_timer_slack(uint64_t ns) {
  return prctl(PR_SET_TIMERSLACK, (unsigned long)(ns ? ns : 1), 0, 0, 0) == 0 ? RV_OK : RV_ERR;
}

void rv_yield(void) { sched_yield(); }

int rv_current_cpu(void) { return sched_getcpu(); }
