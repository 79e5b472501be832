/*
 * test_core.c - tests of rock_vec's C core: the SPSC ring, the futex
 * helpers, the learner/worker pool protocol (commands and completions, and
 * the async batches: rows, blocks, rv_send) and the heartbeat thread.
 *
 * A plain C program, no framework: each test is a void function named as a
 * sentence; CHECK stops the test at the first failed condition, threads
 * report failures through thread_fail(). It is meant to run clean under
 * ThreadSanitizer: every shared datum the tests write with plain stores is
 * published only through the core's own release/acquire operations, so a
 * missing barrier in the core shows up as a TSAN report, and a lost wakeup
 * shows up as a loud RV_TIMEOUT. A sanitizer report also fails the test
 * that was running (__sanitizer_report_error_summary hook).
 *
 *   gcc -std=gnu11 -O1 -g -Wall -Wextra -fsanitize=thread -Icsrc -Ishm \
 *       csrc/tests/test_core.c csrc/rv_futex.c csrc/rv_pool.c \
 *       csrc/rv_spsc_ring.c csrc/rv_process.c -lpthread -o /tmp/rv_test_tsan
 *   /tmp/rv_test_tsan [--scale=X] [--list] [name-substring ...]
 *
 * --scale (or RV_TEST_SCALE) multiplies the message counts and rounds of the
 * stress tests (default 1, sized for ~20 s under TSAN on 2 cores);
 * RV_TEST_TIMEOUT_S sets the limit of every protocol wait (default 10 s).
 * The last line is "N passed, M failed"; the exit status is 1 on failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rv_atomic.h"
#include "rv_futex.h"
#include "rv_layout.h"
#include "rv_blocks.h"
#include "rv_heartbeat.h"
#include "rv_pool.h"
#include "rv_process.h"
#include "rv_spsc_ring.h"

/* ------------------------------------------------------------------ */
/* harness                                                             */
/* ------------------------------------------------------------------ */

static int g_failed;       /* current test failed (main thread only) */
static int g_async_failed; /* failures reported by other threads (atomic) */
static double g_scale = 1.0;
static int64_t g_wait_timeout_ns = 10 * 1000000000LL;

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL
/* Upper bound on "promptly" and on overshooting a timeout: generous, the
 * machine may be shared and loaded. */
#define SLACK_NS (5 * (uint64_t)NS_PER_S)

/* One line per failure, written at once (threads may fail together). */
static void fail_at(const char *file, int line, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "    FAILED %s:%d: %s\n", file, line, msg);
}

/* Stops the current (void) test function at the first failed condition. */
#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fail_at(__FILE__, __LINE__, "%s", #cond);                        \
      g_failed = 1;                                                    \
      return;                                                          \
    }                                                                  \
  } while (0)

#define CHECKF(cond, ...)                                              \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fail_at(__FILE__, __LINE__, "%s", #cond);                        \
      fail_at(__FILE__, __LINE__, __VA_ARGS__);                        \
      g_failed = 1;                                                    \
      return;                                                          \
    }                                                                  \
  } while (0)

/* From any thread: records a failure of the current test and says why. */
#define thread_fail(...)                                               \
  do {                                                                 \
    fail_at(__FILE__, __LINE__, __VA_ARGS__);                          \
    __atomic_fetch_add(&g_async_failed, 1, __ATOMIC_SEQ_CST);          \
  } while (0)

/* Sanitizers call this (a weak hook of their runtime) once per report: the
 * test running at the time then fails too, not just the exit status. */
void __sanitizer_report_error_summary(const char *summary);
void __sanitizer_report_error_summary(const char *summary) {
  fprintf(stderr, "%s\n    FAILED: a sanitizer report during this test\n", summary);
  __atomic_fetch_add(&g_async_failed, 1, __ATOMIC_SEQ_CST);
}

static int async_failures(void) { return __atomic_load_n(&g_async_failed, __ATOMIC_SEQ_CST); }

static uint64_t scaled(uint64_t base) {
  double v = (double)base * g_scale;
  return v < 1.0 ? 1 : (uint64_t)v;
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {ns / NS_PER_S, ns % NS_PER_S};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* 64-byte aligned, any size (aligned_alloc wants a multiple of 64). */
static void *alloc64(size_t bytes) {
  void *p = NULL;
  return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static const char *rc_name(int rc) {
  switch (rc) {
    case RV_OK: return "RV_OK";
    case RV_TIMEOUT: return "RV_TIMEOUT";
    case RV_FAULT: return "RV_FAULT";
    case RV_FULL: return "RV_FULL";
    case RV_EMPTY: return "RV_EMPTY";
    case RV_ERR: return "RV_ERR";
    default: return "(unknown)";
  }
}

/* splitmix64: a tiny deterministic generator for batch sizes and values. */
static uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *state, uint32_t n) { return (uint32_t)(rng_next(state) % n); }

/* Polls *word (atomic) until it equals want or limit_ns passes. */
static int wait_until_u32(const uint32_t *word, uint32_t want, int64_t limit_ns) {
  uint64_t end = rv_now_ns() + (uint64_t)limit_ns;
  while (rv_load_seq_cst(word) != want) {
    if (rv_now_ns() > end) return 0;
    sleep_ns(200000);
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* SPSC ring: single-threaded behaviours                               */
/* ------------------------------------------------------------------ */

#define GUARD 256
#define GUARD_BYTE 0xA5

/* A ring with guard zones around it (to catch writes outside its bytes). */
typedef struct {
  uint8_t *base;
  rv_spsc_ring_t *r;
  size_t bytes;
} guarded_ring_t;

static int ring_open(guarded_ring_t *g, uint64_t capacity) {
  g->bytes = rv_spsc_ring_bytes(capacity);
  g->base = alloc64(GUARD + g->bytes + GUARD);
  if (!g->base) return RV_ERR;
  memset(g->base, GUARD_BYTE, GUARD + g->bytes + GUARD);
  g->r = (rv_spsc_ring_t *)(g->base + GUARD);
  return rv_spsc_ring_init(g->r, capacity);
}

/* 1 when neither guard zone nor the ring's trailing pad line was written. */
static int ring_guards_intact(const guarded_ring_t *g) {
  for (size_t i = 0; i < GUARD; i++)
    if (g->base[i] != GUARD_BYTE || g->base[GUARD + g->bytes + i] != GUARD_BYTE) return 0;
  for (size_t i = g->bytes - 64; i < g->bytes; i++)
    if (g->base[GUARD + i] != GUARD_BYTE) return 0;
  return 1;
}

static void ring_close(guarded_ring_t *g) { free(g->base); }

static void should_lay_out_ring_header_in_four_cache_lines(void) {
  CHECK(offsetof(rv_spsc_ring_t, head) == 0);
  CHECK(offsetof(rv_spsc_ring_t, tail) == 64);
  CHECK(offsetof(rv_spsc_ring_t, capacity) == 128);
  CHECK(offsetof(rv_spsc_ring_t, slots) == 256);
  CHECK(rv_spsc_ring_bytes(1) == 256 + 8 + 64);
  CHECK(rv_spsc_ring_bytes(1024) == 256 + 1024 * 8 + 64);
}

static void should_reject_capacity_zero(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 0) == RV_ERR);
  ring_close(&g);
}

static void should_reject_capacity_not_power_of_two(void) {
  static const uint64_t bad[] = {3, 5, 6, 7, 12, 100, 1000, 1023, 1025, (1ULL << 20) + 1};
  uint64_t cap1_bytes = rv_spsc_ring_bytes(1 << 11);
  uint8_t *mem = alloc64(cap1_bytes);
  CHECK(mem != NULL);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = rv_spsc_ring_init((rv_spsc_ring_t *)mem, bad[i]);
    if (rc != RV_ERR) {
      free(mem);
      CHECKF(rc == RV_ERR, "capacity %" PRIu64 " accepted (rc %d)", bad[i], rc);
    }
  }
  free(mem);
}

static void should_accept_every_power_of_two_capacity(void) {
  for (int bit = 0; bit <= 12; bit++) {
    guarded_ring_t g;
    uint64_t cap = 1ULL << bit;
    int rc = ring_open(&g, cap);
    int ok = rc == RV_OK && g.r->capacity == cap && g.r->mask == cap - 1 && rv_spsc_ring_size(g.r) == 0;
    ring_close(&g);
    CHECKF(ok, "capacity %" PRIu64 ": rc %d", cap, rc);
  }
}

static void should_start_empty_and_pop_nothing(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  uint64_t out[4] = {7, 7, 7, 7};
  CHECK(rv_spsc_ring_size(g.r) == 0);
  CHECK(rv_spsc_ring_pop(g.r, out, 4) == 0);
  CHECK(out[0] == 7 && out[3] == 7);
  CHECK(ring_guards_intact(&g));
  ring_close(&g);
}

static void should_pop_in_fifo_order(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 16) == RV_OK);
  uint64_t in[10], out[10];
  for (int i = 0; i < 10; i++) in[i] = 1000 + (uint64_t)i;
  CHECK(rv_spsc_ring_push(g.r, in, 4) == 4);
  CHECK(rv_spsc_ring_push(g.r, in + 4, 6) == 6);
  CHECK(rv_spsc_ring_pop(g.r, out, 3) == 3);
  CHECK(rv_spsc_ring_pop(g.r, out + 3, 7) == 7);
  for (int i = 0; i < 10; i++) CHECKF(out[i] == in[i], "out[%d]=%" PRIu64, i, out[i]);
  CHECK(ring_guards_intact(&g));
  ring_close(&g);
}

static void should_reject_push_when_full(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  uint64_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, extra = 99;
  CHECK(rv_spsc_ring_push(g.r, in, 8) == 8);
  CHECK(rv_spsc_ring_size(g.r) == 8);
  CHECK(rv_spsc_ring_push(g.r, &extra, 1) == 0);
  CHECK(rv_spsc_ring_push(g.r, in, 8) == 0);
  CHECK(rv_spsc_ring_size(g.r) == 8);
  uint64_t out[9];
  CHECK(rv_spsc_ring_pop(g.r, out, 9) == 8);
  for (int i = 0; i < 8; i++) CHECK(out[i] == in[i]);
  CHECK(ring_guards_intact(&g));
  ring_close(&g);
}

static void should_free_a_slot_for_push_after_one_pop_from_full(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 4) == RV_OK);
  uint64_t in[4] = {10, 11, 12, 13}, next = 14, out[4];
  CHECK(rv_spsc_ring_push(g.r, in, 4) == 4);
  CHECK(rv_spsc_ring_pop(g.r, out, 1) == 1 && out[0] == 10);
  CHECK(rv_spsc_ring_push(g.r, &next, 1) == 1);
  CHECK(rv_spsc_ring_push(g.r, &next, 1) == 0);
  CHECK(rv_spsc_ring_pop(g.r, out, 4) == 4);
  CHECK(out[0] == 11 && out[1] == 12 && out[2] == 13 && out[3] == 14);
  ring_close(&g);
}

static void should_push_only_what_fits_when_nearly_full(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  uint64_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
  CHECK(rv_spsc_ring_push(g.r, in, 5) == 5);
  CHECK(rv_spsc_ring_push(g.r, in, 5) == 3);
  CHECK(rv_spsc_ring_size(g.r) == 8);
  CHECK(rv_spsc_ring_pop(g.r, out, 8) == 8);
  CHECK(out[4] == 5 && out[5] == 1 && out[6] == 2 && out[7] == 3);
  ring_close(&g);
}

static void should_push_at_most_capacity_from_a_larger_batch(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  uint64_t in[100], out[100];
  for (int i = 0; i < 100; i++) in[i] = (uint64_t)i * 3;
  CHECK(rv_spsc_ring_push(g.r, in, 100) == 8);
  CHECK(rv_spsc_ring_pop(g.r, out, 100) == 8);
  for (int i = 0; i < 8; i++) CHECK(out[i] == in[i]);
  CHECK(ring_guards_intact(&g));
  ring_close(&g);
}

static void should_pop_only_what_is_there_and_leave_the_rest_of_out_alone(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 16) == RV_OK);
  uint64_t in[3] = {41, 42, 43}, out[10];
  for (int i = 0; i < 10; i++) out[i] = 0xDEADBEEF;
  CHECK(rv_spsc_ring_push(g.r, in, 3) == 3);
  CHECK(rv_spsc_ring_pop(g.r, out, 10) == 3);
  CHECK(out[0] == 41 && out[1] == 42 && out[2] == 43);
  for (int i = 3; i < 10; i++) CHECK(out[i] == 0xDEADBEEF);
  CHECK(rv_spsc_ring_pop(g.r, out, 10) == 0);
  ring_close(&g);
}

static void should_treat_zero_length_push_and_pop_as_no_ops(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 4) == RV_OK);
  uint64_t v = 5, out = 77;
  CHECK(rv_spsc_ring_push(g.r, &v, 0) == 0);
  CHECK(rv_spsc_ring_size(g.r) == 0);
  CHECK(rv_spsc_ring_push(g.r, &v, 1) == 1);
  CHECK(rv_spsc_ring_pop(g.r, &out, 0) == 0 && out == 77);
  CHECK(rv_spsc_ring_size(g.r) == 1);
  uint64_t all[4] = {1, 2, 3, 4};
  CHECK(rv_spsc_ring_push(g.r, all, 3) == 3); /* now full */
  CHECK(rv_spsc_ring_push(g.r, all, 0) == 0);
  CHECK(rv_spsc_ring_size(g.r) == 4);
  ring_close(&g);
}

static void should_report_size_after_each_push_and_pop(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 32) == RV_OK);
  uint64_t buf[32], out[32];
  for (int i = 0; i < 32; i++) buf[i] = (uint64_t)i;
  uint64_t expect = 0, state = 1;
  for (int step = 0; step < 2000; step++) {
    uint32_t n = rng_below(&state, 20);
    if (rng_below(&state, 2)) {
      uint32_t k = rv_spsc_ring_push(g.r, buf, n);
      uint64_t fits = 32 - expect < n ? 32 - expect : n;
      CHECKF(k == fits, "step %d push %u -> %u, expected %" PRIu64, step, n, k, fits);
      expect += k;
    } else {
      uint32_t k = rv_spsc_ring_pop(g.r, out, n);
      uint64_t there = expect < n ? expect : n;
      CHECKF(k == there, "step %d pop %u -> %u, expected %" PRIu64, step, n, k, there);
      expect -= k;
    }
    CHECKF(rv_spsc_ring_size(g.r) == expect, "step %d size %" PRIu64 " != %" PRIu64, step,
           rv_spsc_ring_size(g.r), expect);
  }
  ring_close(&g);
}

static void should_pop_in_fifo_order_across_wrap(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  uint64_t in[8], out[8], next_in = 0, next_out = 0;
  /* 5 in, 5 out: the indices pass every multiple of the capacity at a
   * different slot, so batches straddle the end of the slot array. */
  for (int round = 0; round < 1000; round++) {
    for (int i = 0; i < 5; i++) in[i] = next_in++ * 0x100000001ULL;
    CHECK(rv_spsc_ring_push(g.r, in, 5) == 5);
    CHECK(rv_spsc_ring_pop(g.r, out, 8) == 5);
    for (int i = 0; i < 5; i++) {
      uint64_t want = next_out++ * 0x100000001ULL;
      CHECKF(out[i] == want, "round %d out[%d]=%" PRIx64 " want %" PRIx64, round, i, out[i], want);
    }
  }
  CHECK(g.r->head == 5000 && g.r->tail == 5000);
  CHECK(ring_guards_intact(&g));
  ring_close(&g);
}

static void should_keep_fifo_order_when_indices_wrap_past_two_to_the_64(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  /* White box: start both sides just below 2^64 (the indices never wrap in
   * practice; the arithmetic must be modular anyway). */
  uint64_t start = UINT64_MAX - 20;
  g.r->head = g.r->tail = g.r->head_cache = g.r->tail_cache = start;
  uint64_t in[8], out[8], next_in = 0, next_out = 0;
  for (int round = 0; round < 40; round++) {
    for (int i = 0; i < 7; i++) in[i] = 0xC0FFEE00ULL + next_in++;
    CHECK(rv_spsc_ring_push(g.r, in, 7) == 7);
    CHECK(rv_spsc_ring_size(g.r) == 7);
    CHECK(rv_spsc_ring_push(g.r, in, 7) == 1); /* only one more fits */
    next_in++;
    CHECK(rv_spsc_ring_pop(g.r, out, 8) == 8);
    for (int i = 0; i < 7; i++) CHECK(out[i] == 0xC0FFEE00ULL + next_out++);
    CHECK(out[7] == in[0]);
    next_out++;
    CHECK(rv_spsc_ring_size(g.r) == 0);
  }
  CHECK(g.r->head == start + 40 * 8); /* wrapped */
  CHECK(ring_guards_intact(&g));
  ring_close(&g);
}

static void should_keep_guarded_pushes_inside_the_ring_whatever_the_consumer_wrote(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  uint64_t in[20];
  for (int i = 0; i < 20; i++) in[i] = 100 + (uint64_t)i;
  /* A hostile consumer writes over everything the producer reads. */
  g.r->capacity = 1ULL << 40;
  g.r->mask = ~0ULL;
  g.r->tail = 0xDEADBEEFDEADBEEFULL;
  g.r->tail_cache = 0;
  uint32_t n = rv_spsc_ring_push_guarded(g.r, 8, in, 20);
  int ok = n <= 20 && ring_guards_intact(&g);
  g.r->tail = g.r->head - 3; /* 3 messages "unread": 5 slots free */
  g.r->tail_cache = 0;
  n = rv_spsc_ring_push_guarded(g.r, 8, in, 20);
  ok = ok && ring_guards_intact(&g);
  ring_close(&g);
  CHECKF(ok, "a guarded push wrote outside the ring (last push %u)", n);
}

static void should_work_with_capacity_one(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 1) == RV_OK);
  uint64_t v[2] = {123, 456}, out[2] = {0, 0};
  for (int i = 0; i < 100; i++) {
    CHECK(rv_spsc_ring_push(g.r, v, 2) == 1);
    CHECK(rv_spsc_ring_push(g.r, v + 1, 1) == 0);
    CHECK(rv_spsc_ring_size(g.r) == 1);
    CHECK(rv_spsc_ring_pop(g.r, out, 2) == 1 && out[0] == 123);
    CHECK(rv_spsc_ring_pop(g.r, out, 2) == 0);
  }
  CHECK(ring_guards_intact(&g));
  ring_close(&g);
}

static void should_empty_a_used_ring_on_reinit(void) {
  guarded_ring_t g;
  CHECK(ring_open(&g, 8) == RV_OK);
  uint64_t in[6] = {1, 2, 3, 4, 5, 6}, out[8];
  CHECK(rv_spsc_ring_push(g.r, in, 6) == 6);
  CHECK(rv_spsc_ring_pop(g.r, out, 2) == 2);
  CHECK(rv_spsc_ring_init(g.r, 4) == RV_OK);
  CHECK(rv_spsc_ring_size(g.r) == 0 && g.r->capacity == 4);
  CHECK(rv_spsc_ring_pop(g.r, out, 8) == 0);
  CHECK(rv_spsc_ring_push(g.r, in, 6) == 4);
  ring_close(&g);
}

/* ------------------------------------------------------------------ */
/* SPSC ring: two-thread fuzz                                          */
/* ------------------------------------------------------------------ */

#define FUZZ_MAX_BATCH 4096

/* Message = 40-bit sequence number | 24-bit checksum of it. */
static uint64_t fuzz_encode(uint64_t seq) {
  uint64_t check = ((seq ^ 0x5DEECE66DULL) * 0x9E3779B97F4A7C15ULL) >> 40;
  return (seq << 24) | (check & 0xFFFFFF);
}

typedef struct {
  rv_spsc_ring_t *r;
  uint64_t count;
  uint32_t max_push, max_pop;
  uint64_t seed;
  int producer_done; /* atomic */
  int abort;         /* atomic: the other side failed */
  uint64_t push_calls, full_returns, pop_calls, empty_returns;
} fuzz_t;

static void backoff(uint32_t *idle) {
  if (++*idle < 64) {
    rv_cpu_relax();
  } else {
    sched_yield();
  }
}

static void *fuzz_producer(void *arg) {
  fuzz_t *f = arg;
  uint64_t state = f->seed, seq = 0, *buf = malloc(FUZZ_MAX_BATCH * sizeof(uint64_t));
  uint32_t idle = 0;
  uint64_t last_progress = rv_now_ns();
  while (seq < f->count) {
    if (rv_load_relaxed(&f->abort)) break;
    uint32_t n = 1 + rng_below(&state, f->max_push);
    if (n > f->count - seq) n = (uint32_t)(f->count - seq);
    for (uint32_t i = 0; i < n; i++) buf[i] = fuzz_encode(seq + i);
    uint32_t k = rv_spsc_ring_push(f->r, buf, n);
    f->push_calls++;
    if (k > n) {
      thread_fail("push of %u returned %u", n, k);
      break;
    }
    uint64_t size = rv_spsc_ring_size(f->r);
    if (size > f->r->capacity) {
      thread_fail("producer saw size %" PRIu64 " > capacity %" PRIu64, size, f->r->capacity);
      break;
    }
    seq += k;
    if (k == 0) {
      f->full_returns++;
      backoff(&idle);
      if ((idle & 1023) == 0 && rv_now_ns() - last_progress > (uint64_t)g_wait_timeout_ns) {
        thread_fail("producer made no progress for %.1f s at seq %" PRIu64, secs((uint64_t)g_wait_timeout_ns), seq);
        break;
      }
    } else {
      idle = 0;
      last_progress = rv_now_ns();
    }
  }
  if (seq < f->count) rv_store_relaxed(&f->abort, 1);
  rv_store_release(&f->producer_done, 1);
  free(buf);
  return NULL;
}

static void *fuzz_consumer(void *arg) {
  fuzz_t *f = arg;
  uint64_t state = ~f->seed, expected = 0, *out = malloc((FUZZ_MAX_BATCH + 1) * sizeof(uint64_t));
  uint32_t idle = 0;
  while (expected < f->count) {
    if (rv_load_relaxed(&f->abort)) break;
    uint32_t n = 1 + rng_below(&state, f->max_pop);
    out[n] = 0xFEEDFACECAFEBEEFULL; /* sentinel just past the request */
    uint32_t k = rv_spsc_ring_pop(f->r, out, n);
    f->pop_calls++;
    if (k > n || out[n] != 0xFEEDFACECAFEBEEFULL) {
      thread_fail("pop of %u returned %u or wrote past the request", n, k);
      break;
    }
    for (uint32_t i = 0; i < k; i++) {
      uint64_t m = out[i], seq = m >> 24;
      if (fuzz_encode(seq) != m) {
        thread_fail("message %" PRIu64 " corrupt: %016" PRIx64 " (checksum mismatch)", expected + i, m);
        goto out;
      }
      if (seq != expected + i) {
        thread_fail("message %" PRIu64 " out of order: got sequence %" PRIu64 " (%s)", expected + i, seq,
                    seq < expected + i ? "duplicate or reordered" : "messages lost");
        goto out;
      }
    }
    expected += k;
    if (k == 0) {
      f->empty_returns++;
      /* Producer finished and the ring is empty, yet messages are missing. */
      if (rv_load_acquire(&f->producer_done) && rv_spsc_ring_size(f->r) == 0) {
        if (!rv_load_relaxed(&f->abort))
          thread_fail("producer done but only %" PRIu64 " of %" PRIu64 " messages arrived", expected, f->count);
        break;
      }
      backoff(&idle);
    } else {
      idle = 0;
    }
  }
  if (expected == f->count && rv_spsc_ring_size(f->r) != 0)
    thread_fail("ring not empty after the last message: size %" PRIu64, rv_spsc_ring_size(f->r));
out:
  if (expected < f->count) rv_store_relaxed(&f->abort, 1);
  free(out);
  return NULL;
}

static void run_ring_fuzz(uint64_t capacity, uint64_t count, uint32_t max_push, uint32_t max_pop, uint64_t seed) {
  guarded_ring_t g;
  CHECK(ring_open(&g, capacity) == RV_OK);
  fuzz_t f = {.r = g.r, .count = count, .max_push = max_push, .max_pop = max_pop, .seed = seed};
  pthread_t prod, cons;
  CHECK(pthread_create(&cons, NULL, fuzz_consumer, &f) == 0);
  CHECK(pthread_create(&prod, NULL, fuzz_producer, &f) == 0);
  pthread_join(prod, NULL);
  pthread_join(cons, NULL);
  printf("    cap %-5" PRIu64 " %8" PRIu64 " msgs: %" PRIu64 " pushes (%" PRIu64 " full), %" PRIu64
         " pops (%" PRIu64 " empty)\n",
         capacity, count, f.push_calls, f.full_returns, f.pop_calls, f.empty_returns);
  int intact = ring_guards_intact(&g);
  ring_close(&g);
  CHECK(intact);
  CHECK(async_failures() == 0);
}

static void should_deliver_every_message_once_in_order_between_two_threads(void) {
  /* Several million messages in all; small rings so that full, empty and
   * wrap-around happen all the time, batches larger than the ring too. */
  run_ring_fuzz(64, scaled(1500000), 96, 80, 1);
  if (g_failed) return;
  run_ring_fuzz(1024, scaled(2000000), 700, 1500, 2);
  if (g_failed) return;
  run_ring_fuzz(8, scaled(300000), 12, 5, 3);
  if (g_failed) return;
  run_ring_fuzz(1, scaled(100000), 3, 2, 4);
}

/* ------------------------------------------------------------------ */
/* futex helpers                                                       */
/* ------------------------------------------------------------------ */

static void should_keep_the_monotonic_clock_non_decreasing(void) {
  uint64_t prev = rv_now_ns();
  CHECK(prev > 0);
  for (int i = 0; i < 100000; i++) {
    uint64_t now = rv_now_ns();
    CHECK(now >= prev);
    prev = now;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t mono = (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
  CHECK(mono >= prev && mono - prev < SLACK_NS);
}

static void should_return_at_once_from_futex_wait_when_word_differs(void) {
  uint32_t word = 5;
  uint64_t t0 = rv_now_ns();
  CHECK(rv_futex_wait(&word, 4, 5 * NS_PER_S) == RV_OK);
  CHECK(rv_now_ns() - t0 < SLACK_NS);
}

static void should_time_out_futex_wait_after_its_limit(void) {
  uint32_t word = 5;
  uint64_t t0 = rv_now_ns();
  int rc = rv_futex_wait(&word, 5, 50 * NS_PER_MS);
  uint64_t el = rv_now_ns() - t0;
  CHECKF(rc == RV_TIMEOUT, "rc %s", rc_name(rc));
  CHECKF(el >= 49 * NS_PER_MS && el < SLACK_NS, "elapsed %.3f s", secs(el));
  t0 = rv_now_ns();
  CHECK(rv_futex_wait(&word, 5, 0) == RV_TIMEOUT);
  CHECK(rv_now_ns() - t0 < SLACK_NS);
}

typedef struct {
  uint32_t word;
  int rc;
} futex_sleeper_t;

static void *futex_sleeper(void *arg) {
  futex_sleeper_t *s = arg;
  /* Re-check loop as the contract asks (spurious wakeups return RV_OK). */
  uint64_t end = rv_now_ns() + 10 * NS_PER_S;
  s->rc = RV_TIMEOUT;
  while (rv_now_ns() < end) {
    if (rv_load_acquire(&s->word) != 0) {
      s->rc = RV_OK;
      break;
    }
    rv_futex_wait(&s->word, 0, 100 * NS_PER_MS);
  }
  return NULL;
}

static void should_wake_a_futex_sleeper(void) {
  futex_sleeper_t s = {0, -5};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, futex_sleeper, &s) == 0);
  sleep_ns(20 * NS_PER_MS);
  rv_store_release(&s.word, 1);
  rv_futex_wake(&s.word, 1);
  pthread_join(t, NULL);
  CHECK(s.rc == RV_OK);
}

/* ------------------------------------------------------------------ */
/* pool protocol                                                       */
/* ------------------------------------------------------------------ */

#define MAX_WORKERS 16
#define CELL 8 /* uint64 per worker cell: one cache line each */

/* rv_header_t followed by rv_worker_slot_t[n], 64-byte aligned, zeroed. */
static rv_header_t *segment_new(uint32_t n) {
  size_t bytes = sizeof(rv_header_t) + n * sizeof(rv_worker_slot_t);
  rv_header_t *h = alloc64(bytes);
  if (!h) return NULL;
  memset(h, 0, bytes);
  h->magic = RV_MAGIC;
  h->version = RV_FORMAT_VERSION;
  h->header_size = (uint32_t)sizeof(rv_header_t);
  h->total_size = bytes;
  h->num_workers = n;
  h->workers_off = sizeof(rv_header_t);
  return h;
}

static rv_worker_slot_t *slot_of(rv_header_t *h, uint32_t w) {
  return (rv_worker_slot_t *)((char *)h + h->workers_off) + w;
}

static void dump_pool(rv_header_t *h, const char *why) {
  fprintf(stderr,
          "    POOL STATE (%s): done_count=%u done_target=%u learner_sleeping=%u wake_seq=%u "
          "fault_count=%u error_count=%u\n",
          why, rv_load_seq_cst(&h->done_count), rv_load_seq_cst(&h->done_target),
          rv_load_seq_cst(&h->learner_sleeping), rv_load_seq_cst(&h->wake_seq), rv_load_seq_cst(&h->fault_count),
          rv_load_seq_cst(&h->error_count));
  for (uint32_t w = 0; w < h->num_workers; w++) {
    rv_worker_slot_t *s = slot_of(h, w);
    fprintf(stderr, "      worker %u: cmd_seq=%u cmd=%u done_seq=%u sleeping=%u status=%u\n", w,
            rv_load_seq_cst(&s->cmd_seq), rv_load_seq_cst(&s->cmd), rv_load_seq_cst(&s->done_seq),
            rv_load_seq_cst(&s->sleeping), rv_load_seq_cst(&s->status));
  }
}

typedef struct {
  rv_header_t *h;
  uint32_t nworkers;
  uint32_t rounds;
  int64_t learner_spin_ns, worker_spin_ns;
  int64_t worker_doze_ns; /* each wait first dozes this long on a timer */
  int subsets;        /* dispatch a random non-empty subset each round */
  uint32_t seq_start; /* every slot's initial cmd_seq/done_seq */
  uint32_t count_start; /* initial done_count/done_target */
  uint64_t *values;   /* [nworkers * CELL], plain stores by the learner */
  uint64_t *results;  /* [nworkers * CELL], plain stores by each worker */
  int stop;           /* atomic: the learner gave up */
  uint64_t commands[MAX_WORKERS];
} pool_t;

typedef struct {
  pool_t *p;
  uint32_t index;
} pool_worker_arg_t;

#define RESULT_K 0x2545F4914F6CDD1DULL

static uint64_t round_value(uint32_t round, uint32_t w) {
  uint64_t s = ((uint64_t)round << 8) ^ w;
  return rng_next(&s);
}

static void *pool_worker(void *arg) {
  pool_worker_arg_t *a = arg;
  pool_t *p = a->p;
  rv_worker_slot_t *s = slot_of(p->h, a->index);
  uint64_t *cell = p->results + (size_t)a->index * CELL;
  uint32_t last = p->seq_start;
  for (;;) {
    rv_wait_seen_t seen;
    int rc = rv_worker_wait(s, last, p->worker_doze_ns, p->worker_spin_ns, g_wait_timeout_ns, &seen);
    uint32_t seq = seen.seq;
    if (rc != RV_OK) {
      if (rv_load_acquire(&p->stop)) break;
      thread_fail("worker %u: rv_worker_wait -> %s after seq %u (lost wakeup?)", a->index, rc_name(rc), last);
      dump_pool(p->h, "worker wait failed");
      break;
    }
    if (seq != last + 1) thread_fail("worker %u: cmd_seq went from %u to %u", a->index, last, seq);
    /* Plain reads: published by rv_dispatch's seq_cst store of cmd_seq. */
    uint32_t cmd = s->cmd;
    uint64_t len = s->cmd_len;
    if (cmd == RV_CMD_CLOSE) {
      rv_worker_done(p->h, s, seq, RV_STATUS_OK, 0, 1);
      break;
    }
    if (cmd != RV_CMD_STEP) thread_fail("worker %u: cmd %u, expected RV_CMD_STEP", a->index, cmd);
    uint64_t v = p->values[(size_t)a->index * CELL];
    cell[0] = v * RESULT_K + a->index;
    cell[1] = len; /* the round number */
    cell[2] = seq;
    p->commands[a->index]++;
    rv_worker_done(p->h, s, seq, RV_STATUS_OK, len ^ a->index, 1);
    last = seq;
  }
  return NULL;
}

static void *pool_learner(void *arg) {
  pool_t *p = arg;
  rv_header_t *h = p->h;
  uint32_t all[MAX_WORKERS], list[MAX_WORKERS], n;
  for (uint32_t w = 0; w < p->nworkers; w++) all[w] = w;
  uint32_t target = p->count_start;
  uint64_t state = 0xABCDEF ^ p->rounds;
  for (uint32_t round = 0; round < p->rounds; round++) {
    n = 0;
    if (p->subsets) {
      while (n == 0)
        for (uint32_t w = 0; w < p->nworkers; w++)
          if (rng_below(&state, 2)) list[n++] = w;
    } else {
      for (uint32_t w = 0; w < p->nworkers; w++) list[n++] = w;
    }
    for (uint32_t i = 0; i < n; i++) {
      uint32_t w = list[i];
      p->values[(size_t)w * CELL] = round_value(round, w);
      p->results[(size_t)w * CELL] = 0xBADBADBADBADBADULL; /* a stale result cannot pass */
    }
    rv_dispatch(slot_of(h, 0), list, n, RV_CMD_STEP, round);
    target += n;
    int rc = rv_wait_done(h, target, 0, p->learner_spin_ns, g_wait_timeout_ns);
    if (rc != RV_OK) {
      thread_fail("LEARNER: round %u: rv_wait_done(target %u) -> %s after %.1f s limit", round, target,
                  rc_name(rc), secs((uint64_t)g_wait_timeout_ns));
      dump_pool(h, "learner wait failed");
      goto give_up;
    }
    for (uint32_t i = 0; i < n; i++) {
      uint32_t w = list[i];
      rv_worker_slot_t *s = slot_of(h, w);
      const uint64_t *cell = p->results + (size_t)w * CELL;
      uint64_t want = round_value(round, w) * RESULT_K + w;
      uint32_t cmd_seq = rv_load_relaxed(&s->cmd_seq);
      if (cell[0] != want || cell[1] != round || cell[2] != cmd_seq) {
        thread_fail("round %u worker %u: result %016" PRIx64 " (want %016" PRIx64 "), round %" PRIu64
                    ", seq %" PRIu64 " (want %u): results not published before done_count",
                    round, w, cell[0], want, cell[1], cell[2], cmd_seq);
        goto give_up;
      }
      if (rv_load_relaxed(&s->done_seq) != cmd_seq || s->status != RV_STATUS_OK ||
          s->reply_len != ((uint64_t)round ^ w)) {
        thread_fail("round %u worker %u: done_seq %u cmd_seq %u status %u reply_len %" PRIu64, round, w,
                    rv_load_relaxed(&s->done_seq), cmd_seq, s->status, s->reply_len);
        goto give_up;
      }
    }
  }
  /* Close every worker the protocol way. */
  rv_dispatch(slot_of(h, 0), all, p->nworkers, RV_CMD_CLOSE, 0);
  target += p->nworkers;
  int rc = rv_wait_done(h, target, 0, p->learner_spin_ns, g_wait_timeout_ns);
  if (rc != RV_OK) {
    thread_fail("LEARNER: close: rv_wait_done -> %s", rc_name(rc));
    dump_pool(h, "close failed");
    rv_store_release(&p->stop, 1);
  }
  if (rv_load_relaxed(&h->done_count) != target)
    thread_fail("done_count %u != %u at the end", rv_load_relaxed(&h->done_count), target);
  return NULL;
give_up:
  /* Workers see this when their own wait times out, and leave. */
  rv_store_release(&p->stop, 1);
  return NULL;
}

static void run_pool(uint32_t nworkers, uint32_t rounds, int64_t learner_spin_ns, int64_t worker_spin_ns,
                     int64_t worker_doze_ns, int subsets, uint32_t seq_start, uint32_t count_start) {
  CHECK(nworkers <= MAX_WORKERS);
  pool_t p = {.nworkers = nworkers,
              .rounds = rounds,
              .learner_spin_ns = learner_spin_ns,
              .worker_spin_ns = worker_spin_ns,
              .worker_doze_ns = worker_doze_ns,
              .subsets = subsets,
              .seq_start = seq_start,
              .count_start = count_start};
  p.h = segment_new(nworkers);
  p.values = alloc64(nworkers * CELL * sizeof(uint64_t));
  p.results = alloc64(nworkers * CELL * sizeof(uint64_t));
  CHECK(p.h && p.values && p.results);
  memset(p.values, 0, nworkers * CELL * sizeof(uint64_t));
  memset(p.results, 0, nworkers * CELL * sizeof(uint64_t));
  p.h->done_count = p.h->done_target = count_start;
  for (uint32_t w = 0; w < nworkers; w++) {
    rv_worker_slot_t *s = slot_of(p.h, w);
    s->cmd_seq = s->done_seq = seq_start;
    s->state = RV_WORKER_READY;
  }
  pthread_t workers[MAX_WORKERS], learner;
  pool_worker_arg_t args[MAX_WORKERS];
  uint64_t t0 = rv_now_ns();
  for (uint32_t w = 0; w < nworkers; w++) {
    args[w] = (pool_worker_arg_t){&p, w};
    CHECK(pthread_create(&workers[w], NULL, pool_worker, &args[w]) == 0);
  }
  CHECK(pthread_create(&learner, NULL, pool_learner, &p) == 0);
  pthread_join(learner, NULL);
  for (uint32_t w = 0; w < nworkers; w++) pthread_join(workers[w], NULL);
  uint64_t el = rv_now_ns() - t0, total = 0;
  for (uint32_t w = 0; w < nworkers; w++) total += p.commands[w];
  uint64_t woken = 0;
  for (uint32_t w = 0; w < nworkers; w++) woken += slot_of(p.h, w)->woken;
  printf("    %u workers, %u rounds, spin %" PRId64 "/%" PRId64 " us, doze %" PRId64 " us%s: %.2f s (%.1f us/round), %" PRIu64
         " commands, %u learner wakes, %" PRIu64 " worker wakes\n",
         nworkers, rounds, learner_spin_ns / 1000, worker_spin_ns / 1000, worker_doze_ns / 1000,
         subsets ? ", random subsets" : "", secs(el), (double)el / 1e3 / rounds, total,
         rv_load_relaxed(&p.h->wake_seq), woken);
  int stopped = p.stop;
  free(p.values);
  free(p.results);
  free(p.h);
  CHECK(async_failures() == 0);
  CHECK(!stopped);
  if (!subsets) CHECK(total == (uint64_t)nworkers * rounds);
}

static void should_publish_every_round_to_every_worker_with_futex_only(void) {
  run_pool(3, (uint32_t)scaled(25000), 0, 0, 0, 0, 0, 0);
}

static void should_publish_every_round_to_every_worker_with_spinning(void) {
  run_pool(2, (uint32_t)scaled(20000), 50000, 50000, 0, 0, 0, 0);
}

static void should_publish_every_round_with_spinning_learner_and_sleeping_workers(void) {
  run_pool(3, (uint32_t)scaled(6000), 200000, 0, 0, 0, 0, 0);
}

static void should_publish_every_round_with_sleeping_learner_and_spinning_workers(void) {
  run_pool(2, (uint32_t)scaled(6000), 0, 200000, 0, 0, 0, 0);
}

static void should_complete_rounds_that_dispatch_random_worker_subsets(void) {
  run_pool(4, (uint32_t)scaled(10000), 0, 0, 0, 1, 0, 0);
}

static void should_publish_every_round_to_workers_that_doze_then_spin(void) {
  run_pool(2, (uint32_t)scaled(6000), 20000, 30000, 20000, 0, 0, 0);
  if (g_failed) return;
  run_pool(3, (uint32_t)scaled(3000), 0, 0, 50000, 1, 0, 0); /* doze then sleep */
}

static void should_survive_cmd_seq_and_done_count_wrapping_at_two_to_the_32(void) {
  run_pool(3, (uint32_t)scaled(2000), 0, 0, 0, 0, UINT32_MAX - 5, UINT32_MAX - 20);
  if (g_failed) return;
  run_pool(3, (uint32_t)scaled(2000), 20000, 20000, 0, 1, UINT32_MAX - 1, UINT32_MAX - 2);
}

static void should_publish_cmd_and_len_and_bump_seq_of_listed_workers_only(void) {
  rv_header_t *h = segment_new(3);
  CHECK(h);
  uint32_t list[2] = {0, 2};
  rv_dispatch(slot_of(h, 0), list, 2, RV_CMD_RESET, 1234);
  int ok = slot_of(h, 0)->cmd_seq == 1 && slot_of(h, 2)->cmd_seq == 1 && slot_of(h, 1)->cmd_seq == 0 &&
           slot_of(h, 0)->cmd == RV_CMD_RESET && slot_of(h, 2)->cmd_len == 1234 && slot_of(h, 1)->cmd == 0 &&
           slot_of(h, 1)->cmd_len == 0 && h->done_count == 0 && h->wake_seq == 0;
  rv_dispatch(slot_of(h, 0), list + 1, 1, RV_CMD_CALL, 7);
  ok = ok && slot_of(h, 2)->cmd_seq == 2 && slot_of(h, 2)->cmd == RV_CMD_CALL && slot_of(h, 2)->cmd_len == 7 &&
       slot_of(h, 0)->cmd_seq == 1;
  free(h);
  CHECK(ok);
}

static void should_count_completions_and_errors_in_worker_done(void) {
  rv_header_t *h = segment_new(2);
  CHECK(h);
  rv_worker_slot_t *s0 = slot_of(h, 0), *s1 = slot_of(h, 1);
  rv_worker_done(h, s0, 1, RV_STATUS_OK, 10, 1);
  rv_worker_done(h, s1, 1, RV_STATUS_ERROR, 77, 1);
  int ok = h->done_count == 2 && h->error_count == 1 && s0->done_seq == 1 && s0->status == RV_STATUS_OK &&
           s0->reply_len == 10 && s1->done_seq == 1 && s1->status == RV_STATUS_ERROR && s1->reply_len == 77;
  rv_worker_done(h, s1, 2, RV_STATUS_OK, 0, 1);
  ok = ok && h->done_count == 3 && h->error_count == 1 && s1->status == RV_STATUS_OK && s1->done_seq == 2;
  /* Nobody sleeps: no wake is paid for. */
  ok = ok && h->wake_seq == 0;
  free(h);
  CHECK(ok);
}

static void should_return_ok_at_once_when_target_already_reached(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  h->done_count = 5;
  uint64_t t0 = rv_now_ns();
  int a = rv_wait_done(h, 5, 0, 0, 0);
  int b = rv_wait_done(h, 3, 0, 0, 0);  /* earlier target: reached too */
  int c = rv_wait_done(h, 6, 0, 0, 0);  /* not reached, no time: timeout */
  h->done_count = 2;                    /* wrap-safe comparison: */
  int d = rv_wait_done(h, UINT32_MAX - 1, 0, 0, 0); /* 2 is past 2^32 - 2 */
  uint64_t el = rv_now_ns() - t0;
  free(h);
  CHECK(a == RV_OK && b == RV_OK);
  CHECKF(c == RV_TIMEOUT, "got %s", rc_name(c));
  CHECKF(d == RV_OK, "got %s", rc_name(d));
  CHECK(el < SLACK_NS);
}

static void check_wait_done_timeout(int64_t spin_ns, int64_t timeout_ns) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  uint64_t t0 = rv_now_ns();
  int rc = rv_wait_done(h, 1, 0, spin_ns, timeout_ns);
  uint64_t el = rv_now_ns() - t0;
  uint32_t sleeping = h->learner_sleeping;
  free(h);
  CHECKF(rc == RV_TIMEOUT, "spin %" PRId64 " timeout %" PRId64 ": %s", spin_ns, timeout_ns, rc_name(rc));
  CHECKF(el >= (uint64_t)timeout_ns && el < (uint64_t)timeout_ns + SLACK_NS,
         "spin %" PRId64 " timeout %" PRId64 ": took %.3f s", spin_ns, timeout_ns, secs(el));
  CHECK(sleeping == 0); /* flag lowered on the way out */
}

static void should_time_out_wait_done_after_roughly_the_timeout(void) {
  check_wait_done_timeout(0, 0);
  if (g_failed) return;
  check_wait_done_timeout(0, 1 * NS_PER_MS);
  if (g_failed) return;
  check_wait_done_timeout(0, 200 * NS_PER_MS);
  if (g_failed) return;
  check_wait_done_timeout(10 * NS_PER_MS, 150 * NS_PER_MS); /* spin, then sleep */
  if (g_failed) return;
  check_wait_done_timeout(5 * NS_PER_S, 100 * NS_PER_MS); /* spin budget beyond the limit */
}

typedef struct {
  rv_header_t *h;
  int64_t delay_ns;
  int wait_for_sleeper; /* report only once the learner is seen sleeping */
  int saw_sleeper;
  uint64_t reported_at;
} reporter_t;

static void *fault_reporter(void *arg) {
  reporter_t *r = arg;
  if (r->wait_for_sleeper) {
    r->saw_sleeper = wait_until_u32(&r->h->learner_sleeping, 1, 5 * NS_PER_S);
    if (!r->saw_sleeper) thread_fail("the learner never went to sleep in rv_wait_done");
  }
  sleep_ns(r->delay_ns); /* let it get into the futex syscall */
  rv_store_relaxed(&r->reported_at, rv_now_ns());
  rv_report_fault(r->h);
  return NULL;
}

static void check_fault_wakes_learner(int64_t spin_ns, int wait_for_sleeper) {
  rv_header_t *h = segment_new(2);
  CHECK(h);
  reporter_t r = {.h = h, .delay_ns = 30 * NS_PER_MS, .wait_for_sleeper = wait_for_sleeper};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fault_reporter, &r) == 0);
  uint64_t t0 = rv_now_ns();
  int rc = rv_wait_done(h, 2, 0, spin_ns, 20 * NS_PER_S);
  uint64_t back = rv_now_ns();
  pthread_join(t, NULL);
  uint32_t faults = h->fault_count, sleeping = h->learner_sleeping;
  /* The fault is now seen: waiting again with faults_seen = 1 times out. */
  int again = rv_wait_done(h, 2, 1, 0, 50 * NS_PER_MS);
  free(h);
  CHECK(async_failures() == 0);
  CHECKF(rc == RV_FAULT, "rv_wait_done -> %s after %.3f s", rc_name(rc), secs(back - t0));
  CHECKF(back >= r.reported_at && back - r.reported_at < SLACK_NS,
         "woke %.3f s after the report", secs(back - r.reported_at));
  CHECK(faults == 1 && sleeping == 0);
  CHECKF(again == RV_TIMEOUT, "second wait -> %s", rc_name(again));
}

static void should_wake_a_learner_sleeping_in_wait_done_on_fault(void) { check_fault_wakes_learner(0, 1); }

static void should_return_fault_to_a_spinning_learner(void) { check_fault_wakes_learner(30 * NS_PER_S, 0); }

typedef struct {
  rv_header_t *h;
  uint32_t rounds;
  uint32_t go; /* atomic: round number the reporter may report for */
} fault_race_t;

static void *racing_reporter(void *arg) {
  fault_race_t *f = arg;
  uint64_t state = 99;
  for (uint32_t round = 1; round <= f->rounds; round++) {
    uint64_t end = rv_now_ns() + 3 * (uint64_t)g_wait_timeout_ns;
    while (rv_load_acquire(&f->go) < round) {
      if (rv_now_ns() > end) {
        thread_fail("reporter: round %u never started", round);
        return NULL;
      }
      sched_yield();
    }
    /* A random short delay: sometimes before the learner raises its
     * sleeping flag, sometimes between that and the futex call, sometimes
     * while it sleeps. */
    uint32_t spins = rng_below(&state, 4000);
    for (uint32_t i = 0; i < spins; i++) rv_cpu_relax();
    if (rng_below(&state, 8) == 0) sched_yield();
    rv_report_fault(f->h);
  }
  return NULL;
}

static void should_never_lose_a_fault_report_racing_with_the_learner_going_to_sleep(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  fault_race_t f = {.h = h, .rounds = (uint32_t)scaled(3000)};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, racing_reporter, &f) == 0);
  uint32_t round = 1;
  int rc = RV_FAULT;
  uint64_t slowest = 0;
  for (; round <= f.rounds; round++) {
    rv_store_release(&f.go, round);
    uint64_t t0 = rv_now_ns();
    /* done_count never reaches 1: only the fault can end the wait. */
    rc = rv_wait_done(h, 1, round - 1, (round & 1) ? 0 : 2000, g_wait_timeout_ns);
    uint64_t el = rv_now_ns() - t0;
    if (el > slowest) slowest = el;
    if (rc != RV_FAULT) break;
    /* The reporter may still be bumping wake_seq for this round while the
     * next wait starts: a spurious wake the learner must shrug off. */
  }
  if (rc != RV_FAULT) {
    dump_pool(h, "fault race");
    rv_store_release(&f.go, UINT32_MAX); /* let the reporter finish */
  }
  pthread_join(t, NULL);
  uint32_t faults = h->fault_count;
  free(h);
  CHECKF(rc == RV_FAULT, "round %u: rv_wait_done -> %s (lost wakeup of a fault report)", round, rc_name(rc));
  CHECK(faults == f.rounds);
  printf("    %u fault reports, slowest wake %.3f ms\n", f.rounds, (double)slowest / 1e6);
}

static void should_return_fault_at_once_when_a_fault_is_unseen(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  h->fault_count = 2;
  uint64_t t0 = rv_now_ns();
  int a = rv_wait_done(h, 1, 1, 0, 5 * NS_PER_S);
  int b = rv_wait_done(h, 1, 2, 0, 0);
  uint64_t el = rv_now_ns() - t0;
  free(h);
  CHECKF(a == RV_FAULT, "%s", rc_name(a));
  CHECKF(b == RV_TIMEOUT, "%s", rc_name(b));
  CHECK(el < SLACK_NS);
}

typedef struct {
  rv_header_t *h;
  int learner_back; /* atomic */
  uint32_t wake_after_first;
} completer_t;

static void *two_completions(void *arg) {
  completer_t *c = arg;
  if (!wait_until_u32(&c->h->learner_sleeping, 1, 5 * NS_PER_S)) {
    thread_fail("the learner never went to sleep");
    rv_report_fault(c->h);
    return NULL;
  }
  sleep_ns(20 * NS_PER_MS);
  rv_worker_done(c->h, slot_of(c->h, 0), 1, RV_STATUS_OK, 0, 1); /* not the last one */
  sleep_ns(50 * NS_PER_MS);
  if (rv_load_acquire(&c->learner_back)) thread_fail("the learner returned before the last completion");
  c->wake_after_first = rv_load_seq_cst(&c->h->wake_seq);
  rv_worker_done(c->h, slot_of(c->h, 1), 1, RV_STATUS_OK, 0, 1); /* the last one wakes it */
  return NULL;
}

static void should_wake_a_sleeping_learner_on_the_last_completion_only(void) {
  rv_header_t *h = segment_new(2);
  CHECK(h);
  completer_t c = {.h = h};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, two_completions, &c) == 0);
  int rc = rv_wait_done(h, 2, 0, 0, 20 * NS_PER_S);
  rv_store_release(&c.learner_back, 1);
  pthread_join(t, NULL);
  uint32_t wake = h->wake_seq, count = h->done_count;
  free(h);
  CHECK(async_failures() == 0);
  CHECKF(rc == RV_OK, "%s", rc_name(rc));
  CHECK(count == 2);
  CHECKF(c.wake_after_first == 0, "a non-final completion bumped wake_seq to %u", c.wake_after_first);
  CHECKF(wake == 1, "wake_seq %u", wake);
}

static void *complete_later(void *arg) {
  rv_header_t *h = arg;
  sleep_ns(100 * NS_PER_MS);
  rv_worker_done(h, slot_of(h, 0), 1, RV_STATUS_OK, 0, 1);
  return NULL;
}

static void should_wait_without_limit_for_a_negative_timeout(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  pthread_t t;
  uint64_t t0 = rv_now_ns();
  CHECK(pthread_create(&t, NULL, complete_later, h) == 0);
  int rc = rv_wait_done(h, 1, 0, 0, -1);
  uint64_t el = rv_now_ns() - t0;
  pthread_join(t, NULL);
  free(h);
  CHECKF(rc == RV_OK, "%s", rc_name(rc));
  CHECK(el >= 100 * NS_PER_MS);
}

static void should_return_at_once_from_worker_wait_when_a_command_is_pending(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  rv_worker_slot_t *s = slot_of(h, 0);
  uint32_t w = 0;
  rv_wait_seen_t seen;
  rv_dispatch(slot_of(h, 0), &w, 1, RV_CMD_STEP, 0);
  int rc = rv_worker_wait(s, 0, 0, 0, 0, &seen);
  uint64_t hb = s->heartbeat_ns;
  uint32_t woken = s->woken;
  free(h);
  CHECKF(rc == RV_OK, "%s", rc_name(rc));
  CHECK(seen.seq == 1);
  CHECK(seen.asleep == 0 && woken == 0);
  CHECK(hb != 0 && hb <= rv_now_ns());
}

static void check_worker_wait_timeout(int64_t doze_ns, int64_t spin_ns, int64_t timeout_ns) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  rv_worker_slot_t *s = slot_of(h, 0);
  rv_wait_seen_t seen = {.seq = 12345};
  uint64_t t0 = rv_now_ns();
  int rc = rv_worker_wait(s, 0, doze_ns, spin_ns, timeout_ns, &seen);
  uint64_t el = rv_now_ns() - t0;
  uint64_t hb = s->heartbeat_ns;
  uint32_t sleeping = s->sleeping;
  free(h);
  CHECKF(rc == RV_TIMEOUT, "%s", rc_name(rc));
  CHECKF(el >= (uint64_t)timeout_ns && el < (uint64_t)timeout_ns + SLACK_NS, "took %.3f s", secs(el));
  CHECK(seen.seq == 12345); /* untouched on timeout */
  CHECK(hb >= t0 && hb <= t0 + el);
  CHECK(sleeping == 0);
}

static void should_time_out_worker_wait_after_roughly_the_timeout(void) {
  check_worker_wait_timeout(0, 0, 0);
  if (g_failed) return;
  check_worker_wait_timeout(0, 0, 150 * NS_PER_MS);
  if (g_failed) return;
  check_worker_wait_timeout(0, 5 * NS_PER_S, 100 * NS_PER_MS);
  if (g_failed) return;
  check_worker_wait_timeout(5 * NS_PER_S, 0, 100 * NS_PER_MS); /* the timeout cuts a doze short */
}

typedef struct {
  rv_header_t *h;
  int64_t doze_ns, spin_ns;
  int rc;
  uint32_t seq, asleep;
  int64_t doze_late_ns;
  uint64_t back_at;
} worker_waiter_t;

static void *worker_waits(void *arg) {
  worker_waiter_t *w = arg;
  rv_wait_seen_t seen;
  w->rc = rv_worker_wait(slot_of(w->h, 0), 0, w->doze_ns, w->spin_ns, 20 * NS_PER_S, &seen);
  w->seq = seen.seq;
  w->asleep = seen.asleep;
  w->doze_late_ns = seen.doze_late_ns;
  w->back_at = rv_now_ns();
  return NULL;
}

/* A worker asleep in its wait (dozing for doze_ns, or past its spin) is
 * woken by a dispatch at once, sees it came while asleep, and counts the wake. */
static void check_dispatch_wakes_a_sleeping_worker(int64_t doze_ns) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  worker_waiter_t ww = {.h = h, .rc = -5, .doze_ns = doze_ns};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker_waits, &ww) == 0);
  int slept = wait_until_u32(&slot_of(h, 0)->sleeping, 1, 5 * NS_PER_S);
  sleep_ns(20 * NS_PER_MS);
  uint32_t w = 0;
  uint64_t t0 = rv_now_ns();
  rv_dispatch(slot_of(h, 0), &w, 1, RV_CMD_CALL, 9);
  pthread_join(t, NULL);
  uint32_t woken = slot_of(h, 0)->woken;
  uint64_t cmd_ns = slot_of(h, 0)->cmd_ns;
  free(h);
  CHECK(slept);
  CHECKF(ww.rc == RV_OK, "%s", rc_name(ww.rc));
  CHECK(ww.seq == 1);
  CHECKF(ww.back_at - t0 < SLACK_NS, "woke %.3f s after dispatch (doze %.0f s)", secs(ww.back_at - t0),
         secs((uint64_t)doze_ns));
  CHECK(ww.asleep == 1 && woken == 1);
  CHECKF(cmd_ns >= t0 && cmd_ns <= ww.back_at, "cmd_ns %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", cmd_ns, t0,
         ww.back_at);
}

static void should_wake_a_worker_sleeping_in_worker_wait_on_dispatch(void) {
  check_dispatch_wakes_a_sleeping_worker(0);
}

static void should_cut_a_doze_short_when_a_command_comes_and_count_the_wake(void) {
  check_dispatch_wakes_a_sleeping_worker(10 * NS_PER_S);
}

typedef struct {
  int stop;
  int cpu;
} hog_t;

static void *hog(void *arg) {
  hog_t *g = arg;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(g->cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  while (!rv_load_acquire(&g->stop)) {
  }
  return NULL;
}

static void should_count_the_time_a_spin_yields_to_a_thread_on_its_cpu(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  hog_t g = {.cpu = sched_getcpu()};
  cpu_set_t set, old;
  pthread_getaffinity_np(pthread_self(), sizeof old, &old);
  CPU_ZERO(&set);
  CPU_SET(g.cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* the hog and the spin share one CPU */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, hog, &g) == 0);
  rv_wait_seen_t seen;
  int rc = rv_worker_wait(slot_of(h, 0), 0, 0, 100 * NS_PER_MS, 100 * NS_PER_MS, &seen);
  rv_store_release(&g.stop, 1);
  pthread_join(t, NULL);
  pthread_setaffinity_np(pthread_self(), sizeof old, &old);
  free(h);
  CHECKF(rc == RV_TIMEOUT, "%s", rc_name(rc));
  /* It yields every few us, so the hog has the CPU most of the 100 ms. */
  CHECKF(seen.stolen_ns > 30 * (int64_t)NS_PER_MS, "stolen %.1f ms of a 100 ms spin", seen.stolen_ns / 1e6);
}

static void should_spin_after_a_doze_and_report_how_late_its_timer_woke(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  /* The doze (20 ms) ends by its timer; the command comes during the spin. */
  worker_waiter_t ww = {.h = h, .rc = -5, .doze_ns = 20 * NS_PER_MS, .spin_ns = 5 * NS_PER_S};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, worker_waits, &ww) == 0);
  sleep_ns(80 * NS_PER_MS);
  uint32_t sleeping = rv_load_seq_cst(&slot_of(h, 0)->sleeping);
  uint32_t w = 0;
  uint64_t t0 = rv_now_ns();
  rv_dispatch(slot_of(h, 0), &w, 1, RV_CMD_CALL, 9);
  pthread_join(t, NULL);
  uint32_t woken = slot_of(h, 0)->woken;
  free(h);
  CHECKF(ww.rc == RV_OK, "%s", rc_name(ww.rc));
  CHECK(ww.seq == 1);
  CHECK(sleeping == 0); /* spinning, not asleep, when the command came */
  CHECK(ww.asleep == 0 && woken == 0);
  CHECKF(ww.doze_late_ns >= 0 && ww.doze_late_ns < (int64_t)SLACK_NS, "doze_late_ns %" PRId64, ww.doze_late_ns);
  CHECKF(ww.back_at - t0 < SLACK_NS, "back %.3f s after dispatch", secs(ww.back_at - t0));
}

/* ------------------------------------------------------------------ */
/* async batches: rows, blocks, rv_send                                */
/* ------------------------------------------------------------------ */

static uint32_t *fills_new(uint32_t blocks) {
  uint32_t *f = alloc64((size_t)blocks * RV_FILL_STRIDE * sizeof(uint32_t));
  if (f) memset(f, 0, (size_t)blocks * RV_FILL_STRIDE * sizeof(uint32_t));
  return f;
}

static void should_claim_rows_round_robin_over_the_output_ring(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  int ok = 1;
  for (uint32_t i = 0; i < 36 && ok; i++) ok = rv_claim_row(h, 12) == i % 12;
  uint32_t claimed = h->rows_claimed;
  free(h);
  CHECK(ok);
  CHECK(claimed == 0); /* the counter itself wraps at the ring size */
}

static void should_claim_a_row_in_range_after_a_worker_wrote_over_the_counter(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  uint32_t bad[4] = {12, 13, 1000, UINT32_MAX}, ok = 1;
  for (int i = 0; i < 4; i++) {
    h->rows_claimed = bad[i];
    uint32_t row = rv_claim_row(h, 12);
    ok = ok && row < 12 && row == bad[i] % 12 && h->rows_claimed == (row + 1) % 12;
  }
  free(h);
  CHECK(ok);
}

static void should_complete_a_block_once_batch_rows_are_done_and_empty_it_on_release(void) {
  rv_header_t *h = segment_new(1);
  uint32_t *fills = fills_new(3);
  CHECK(h && fills);
  for (uint32_t row = 0; row < 4; row++) rv_row_done(h, fills, row, 4); /* block 0 */
  rv_row_done(h, fills, 5, 4);                                         /* block 1 */
  rv_row_done(h, fills, 6, 4);
  uint32_t f0 = fills[0], f1 = fills[RV_FILL_STRIDE], f2 = fills[2 * RV_FILL_STRIDE];
  int a = rv_wait_block(h, fills, 0, 4, 0, 0, 0);
  int b = rv_wait_block(h, fills, 1, 4, 0, 0, 0);
  rv_release_block(fills, 0);
  uint32_t after = fills[0];
  int c = rv_wait_block(h, fills, 0, 4, 0, 0, 0);
  uint32_t wakes = h->wake_seq;
  free(fills);
  free(h);
  CHECK(f0 == 4 && f1 == 2 && f2 == 0);
  CHECKF(a == RV_OK, "%s", rc_name(a));
  CHECKF(b == RV_TIMEOUT, "%s", rc_name(b));
  CHECK(after == 0);
  CHECKF(c == RV_TIMEOUT, "%s", rc_name(c));
  CHECK(wakes == 0); /* nobody slept: no wake paid for */
}

typedef struct {
  rv_header_t *h;
  uint32_t *fills;
  uint32_t wake_after_other_block;
  int learner_back; /* atomic */
} block_filler_t;

static void *fill_blocks_later(void *arg) {
  block_filler_t *b = arg;
  if (!wait_until_u32(&b->h->learner_sleeping, 1, 5 * NS_PER_S)) {
    thread_fail("the learner never went to sleep in rv_wait_block");
    rv_report_fault(b->h);
    return NULL;
  }
  sleep_ns(20 * NS_PER_MS);
  for (uint32_t row = 0; row < 3; row++) rv_row_done(b->h, b->fills, row, 3); /* block 0: not awaited */
  rv_row_done(b->h, b->fills, 3, 3);
  rv_row_done(b->h, b->fills, 4, 3);
  sleep_ns(50 * NS_PER_MS);
  if (rv_load_acquire(&b->learner_back)) thread_fail("the learner returned before its block filled");
  b->wake_after_other_block = rv_load_seq_cst(&b->h->wake_seq);
  rv_row_done(b->h, b->fills, 5, 3); /* completes block 1 */
  return NULL;
}

static void should_wake_a_learner_sleeping_in_wait_block_only_for_its_block(void) {
  rv_header_t *h = segment_new(1);
  uint32_t *fills = fills_new(2);
  CHECK(h && fills);
  block_filler_t b = {.h = h, .fills = fills};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fill_blocks_later, &b) == 0);
  int rc = rv_wait_block(h, fills, 1, 3, 0, 0, 20 * NS_PER_S);
  rv_store_release(&b.learner_back, 1);
  pthread_join(t, NULL);
  uint32_t wakes = h->wake_seq, waited = h->block_waited;
  free(fills);
  free(h);
  CHECK(async_failures() == 0);
  CHECKF(rc == RV_OK, "%s", rc_name(rc));
  CHECKF(b.wake_after_other_block == 0, "a block nobody waits for woke the learner (wake_seq %u)",
         b.wake_after_other_block);
  CHECK(wakes == 1 && waited == 1);
}

static void should_time_out_and_report_faults_in_wait_block(void) {
  rv_header_t *h = segment_new(1);
  uint32_t *fills = fills_new(2);
  CHECK(h && fills);
  uint64_t t0 = rv_now_ns();
  int a = rv_wait_block(h, fills, 1, 3, 0, 0, 150 * NS_PER_MS);
  uint64_t el = rv_now_ns() - t0;
  h->fault_count = 1;
  int b = rv_wait_block(h, fills, 1, 3, 0, 0, 5 * NS_PER_S);
  int c = rv_wait_block(h, fills, 1, 3, 1, 0, 0);
  uint32_t sleeping = h->learner_sleeping;
  free(fills);
  free(h);
  CHECKF(a == RV_TIMEOUT, "%s", rc_name(a));
  CHECKF(el >= 150 * NS_PER_MS && el < 150 * NS_PER_MS + SLACK_NS, "took %.3f s", secs(el));
  CHECKF(b == RV_FAULT, "%s", rc_name(b));
  CHECKF(c == RV_TIMEOUT, "%s", rc_name(c));
  CHECK(sleeping == 0);
}

static void should_queue_ids_per_worker_and_ring_each_doorbell_in_send(void) {
  rv_header_t *h = segment_new(2);
  guarded_ring_t g0, g1;
  CHECK(h);
  CHECK(ring_open(&g0, 4) == RV_OK && ring_open(&g1, 4) == RV_OK);
  void *rings[2] = {g0.r, g1.r};
  uint32_t workers[2] = {1, 0}, counts[2] = {2, 1};
  uint64_t ids[3] = {10, 11, 20}, out[4] = {0};
  int rc = rv_send(slot_of(h, 0), rings, 4, workers, counts, 2, ids);
  int ok = rc == RV_OK && slot_of(h, 0)->cmd_seq == 1 && slot_of(h, 1)->cmd_seq == 1 &&
           slot_of(h, 0)->cmd == RV_CMD_DRAIN && slot_of(h, 1)->cmd == RV_CMD_DRAIN;
  ok = ok && rv_spsc_ring_pop(g1.r, out, 4) == 2 && out[0] == 10 && out[1] == 11;
  ok = ok && rv_spsc_ring_pop(g0.r, out, 4) == 1 && out[0] == 20;
  /* Worker 0's ring takes 4: the fifth id does not fit. */
  uint64_t many[5] = {1, 2, 3, 4, 5};
  uint32_t w0 = 0, five = 5;
  int full = rv_send(slot_of(h, 0), rings, 4, &w0, &five, 1, many);
  ok = ok && slot_of(h, 0)->cmd_seq == 2 && rv_spsc_ring_size(g0.r) == 4;
  int intact = ring_guards_intact(&g0) && ring_guards_intact(&g1);
  ring_close(&g0);
  ring_close(&g1);
  free(h);
  CHECK(ok);
  CHECKF(full == RV_FULL, "%s", rc_name(full));
  CHECK(intact);
}

/* Async stress: the learner sends env ids, workers drain their rings,
 * claim output rows and fill them; the learner waits block after block,
 * checks every row, releases the block and sends its envs again. */
#define ASYNC_MAX_ENVS 64

typedef struct {
  rv_header_t *h;
  uint32_t nworkers, envs_per_worker, num_envs, batch, blocks, rows;
  uint32_t blocks_to_read;
  int64_t learner_spin_ns, worker_spin_ns;
  rv_spsc_ring_t *rings[MAX_WORKERS];
  uint32_t *fills;
  uint64_t actions[ASYNC_MAX_ENVS]; /* plain: learner writes before rv_send */
  uint64_t *row_env, *row_val, *row_step; /* [rows], plain: workers write */
  int stop;
  uint64_t drained[MAX_WORKERS];
} async_t;

typedef struct {
  async_t *a;
  uint32_t index;
} async_worker_arg_t;

static void *async_worker(void *arg) {
  async_worker_arg_t *wa = arg;
  async_t *a = wa->a;
  rv_worker_slot_t *s = slot_of(a->h, wa->index);
  uint64_t steps[ASYNC_MAX_ENVS] = {0}, ids[ASYNC_MAX_ENVS];
  uint32_t last = 0;
  for (;;) {
    rv_wait_seen_t seen;
    int rc = rv_worker_wait(s, last, 0, a->worker_spin_ns, g_wait_timeout_ns, &seen);
    uint32_t seq = seen.seq;
    if (rc != RV_OK) {
      if (rv_load_acquire(&a->stop)) break;
      thread_fail("async worker %u: rv_worker_wait -> %s after seq %u", wa->index, rc_name(rc), last);
      dump_pool(a->h, "async worker wait failed");
      break;
    }
    /* Atomic: the learner may ring the doorbell again meanwhile. */
    uint32_t cmd = rv_load_relaxed(&s->cmd);
    if (cmd == RV_CMD_CLOSE) {
      rv_worker_done(a->h, s, seq, RV_STATUS_OK, 0, seq - last);
      break;
    }
    if (cmd != RV_CMD_DRAIN) thread_fail("async worker %u: cmd %u", wa->index, cmd);
    uint32_t n;
    while ((n = rv_spsc_ring_pop(a->rings[wa->index], ids, ASYNC_MAX_ENVS)) != 0) {
      for (uint32_t k = 0; k < n; k++) {
        uint64_t e = ids[k];
        if (e / a->envs_per_worker != wa->index) {
          thread_fail("async worker %u got env %" PRIu64, wa->index, e);
          continue;
        }
        uint32_t row = rv_claim_row(a->h, a->rows);
        a->row_env[row] = e;
        a->row_val[row] = a->actions[e] * RESULT_K + e;
        a->row_step[row] = steps[e]++;
        rv_row_done(a->h, a->fills, row, a->batch);
      }
      a->drained[wa->index] += n;
    }
    rv_worker_done(a->h, s, seq, RV_STATUS_OK, 0, seq - last); /* coalesced doorbells count too */
    last = seq;
  }
  return NULL;
}

/* Learner: writes the actions of envs[0..n) and sends them; returns the
 * number of doorbells rung. */
static uint32_t async_send(async_t *a, const uint64_t *envs, uint32_t n, const uint64_t *steps) {
  uint64_t ids[ASYNC_MAX_ENVS];
  uint32_t workers[MAX_WORKERS], counts[MAX_WORKERS], used = 0, m = 0;
  for (uint32_t w = 0; w < a->nworkers; w++) {
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++)
      if (envs[i] / a->envs_per_worker == w) {
        ids[m++] = envs[i];
        a->actions[envs[i]] = round_value((uint32_t)steps[envs[i]], (uint32_t)envs[i]);
        c++;
      }
    if (c) {
      workers[used] = w;
      counts[used++] = c;
    }
  }
  void *rings[MAX_WORKERS];
  for (uint32_t w = 0; w < a->nworkers; w++) rings[w] = a->rings[w];
  if (rv_send(slot_of(a->h, 0), rings, a->rings[0]->capacity, workers, counts, used, ids) != RV_OK)
    thread_fail("rv_send: a ring overflowed");
  return used;
}

static void run_async(uint32_t nworkers, uint32_t envs_per_worker, uint32_t batch, uint32_t blocks_to_read,
                      int64_t learner_spin_ns, int64_t worker_spin_ns) {
  async_t *a = calloc(1, sizeof(*a));
  CHECK(a);
  a->nworkers = nworkers;
  a->envs_per_worker = envs_per_worker;
  a->num_envs = nworkers * envs_per_worker;
  CHECK(a->num_envs <= ASYNC_MAX_ENVS && nworkers <= MAX_WORKERS);
  a->batch = batch;
  a->blocks = (a->num_envs + batch - 1) / batch + 1; /* as rock_vec.batches.ring_geometry */
  a->rows = a->blocks * batch;
  a->blocks_to_read = blocks_to_read;
  a->learner_spin_ns = learner_spin_ns;
  a->worker_spin_ns = worker_spin_ns;
  a->h = segment_new(nworkers);
  a->fills = fills_new(a->blocks);
  a->row_env = calloc(a->rows, sizeof(uint64_t));
  a->row_val = calloc(a->rows, sizeof(uint64_t));
  a->row_step = calloc(a->rows, sizeof(uint64_t));
  CHECK(a->h && a->fills && a->row_env && a->row_val && a->row_step);
  uint64_t ring_cap = 1;
  while (ring_cap < envs_per_worker) ring_cap <<= 1;
  for (uint32_t w = 0; w < nworkers; w++) {
    a->rings[w] = alloc64(rv_spsc_ring_bytes(ring_cap));
    CHECK(a->rings[w] && rv_spsc_ring_init(a->rings[w], ring_cap) == RV_OK);
  }
  pthread_t threads[MAX_WORKERS];
  async_worker_arg_t args[MAX_WORKERS];
  for (uint32_t w = 0; w < nworkers; w++) {
    args[w] = (async_worker_arg_t){a, w};
    CHECK(pthread_create(&threads[w], NULL, async_worker, &args[w]) == 0);
  }

  uint64_t t0 = rv_now_ns(), steps[ASYNC_MAX_ENVS] = {0}, all[ASYNC_MAX_ENVS], got[ASYNC_MAX_ENVS];
  uint32_t doorbells = 0, block = 0, read = 0, in_flight = a->num_envs;
  int failed = 0;
  for (uint32_t e = 0; e < a->num_envs; e++) all[e] = e;
  doorbells += async_send(a, all, a->num_envs, steps);
  for (; read < blocks_to_read; read++) {
    int rc = rv_wait_block(a->h, a->fills, block, batch, 0, learner_spin_ns, g_wait_timeout_ns);
    if (rc != RV_OK) {
      thread_fail("block %u (read %u): rv_wait_block -> %s, fill %u of %u", block, read, rc_name(rc),
                  rv_load_seq_cst(&a->fills[block * RV_FILL_STRIDE]), batch);
      dump_pool(a->h, "async learner");
      failed = 1;
      break;
    }
    for (uint32_t i = 0; i < batch && !failed; i++) {
      uint32_t row = block * batch + i;
      uint64_t e = a->row_env[row];
      if (e >= a->num_envs) {
        thread_fail("row %u: env %" PRIu64, row, e);
        failed = 1;
        break;
      }
      uint64_t want = round_value((uint32_t)steps[e], (uint32_t)e) * RESULT_K + e;
      if (a->row_val[row] != want || a->row_step[row] != steps[e]) {
        thread_fail("row %u env %" PRIu64 ": value %016" PRIx64 " step %" PRIu64 ", want %016" PRIx64
                    " step %" PRIu64, row, e, a->row_val[row], a->row_step[row], want, steps[e]);
        failed = 1;
        break;
      }
      steps[e]++;
      got[i] = e;
    }
    if (failed) break;
    rv_release_block(a->fills, block);
    block = (block + 1) % a->blocks;
    /* Re-send the block's envs while the rows in flight do not cover the
     * blocks still to read; then wind down. */
    if (in_flight - batch < (uint64_t)(blocks_to_read - read - 1) * batch) {
      doorbells += async_send(a, got, batch, steps);
    } else {
      in_flight -= batch;
    }
  }
  /* Every doorbell counted once, coalesced or not. */
  if (!failed) {
    int rc = rv_wait_done(a->h, doorbells, 0, 0, g_wait_timeout_ns);
    if (rc != RV_OK) {
      thread_fail("doorbells: rv_wait_done(%u) -> %s", doorbells, rc_name(rc));
      failed = 1;
    }
  }
  if (failed) {
    rv_store_release(&a->stop, 1);
  } else {
    uint32_t ws[MAX_WORKERS];
    for (uint32_t w = 0; w < nworkers; w++) ws[w] = w;
    rv_dispatch(slot_of(a->h, 0), ws, nworkers, RV_CMD_CLOSE, 0);
    if (rv_wait_done(a->h, doorbells + nworkers, 0, 0, g_wait_timeout_ns) != RV_OK) {
      thread_fail("async close timed out");
      rv_store_release(&a->stop, 1);
    }
  }
  for (uint32_t w = 0; w < nworkers; w++) pthread_join(threads[w], NULL);
  uint64_t el = rv_now_ns() - t0, drained = 0, stepped = 0;
  for (uint32_t w = 0; w < nworkers; w++) drained += a->drained[w];
  for (uint32_t e = 0; e < a->num_envs; e++) stepped += steps[e];
  printf("    async %u workers x %u envs, batch %u, %u blocks of ring: %u blocks read in %.2f s, "
         "%" PRIu64 " env steps, %u doorbells, %u learner wakes\n",
         nworkers, envs_per_worker, batch, a->blocks, read, secs(el), drained, doorbells,
         rv_load_relaxed(&a->h->wake_seq));
  for (uint32_t w = 0; w < nworkers; w++) free(a->rings[w]);
  free(a->row_env);
  free(a->row_val);
  free(a->row_step);
  free(a->fills);
  free(a->h);
  free(a);
  CHECK(!failed && async_failures() == 0);
  CHECK(stepped == (uint64_t)read * batch);
  CHECKF(drained == stepped + in_flight, "drained %" PRIu64 ", read %" PRIu64 ", in flight %u", drained,
         stepped, in_flight);
}

static void should_hand_over_every_async_row_exactly_once_with_futex_only(void) {
  run_async(3, 4, 4, (uint32_t)scaled(40000), 0, 0);
}

static void should_hand_over_every_async_row_exactly_once_with_spinning(void) {
  run_async(2, 5, 3, (uint32_t)scaled(30000), 50000, 50000);
}

/* ------------------------------------------------------------------ */
/* heartbeat                                                           */
/* ------------------------------------------------------------------ */

static void should_refresh_learner_heartbeat_until_stopped(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  uint64_t before = rv_now_ns();
  void *hb = rv_heartbeat_start(&h->learner_heartbeat_ns, 2 * NS_PER_MS);
  CHECK(hb != NULL);
  uint64_t first = rv_load_acquire(&h->learner_heartbeat_ns);
  int updates = 0;
  uint64_t prev = first, end = rv_now_ns() + 5 * NS_PER_S;
  while (updates < 5 && rv_now_ns() < end) {
    uint64_t v = rv_load_acquire(&h->learner_heartbeat_ns);
    if (v != prev) {
      if (v < prev) break;
      updates++;
      prev = v;
    }
    sleep_ns(NS_PER_MS);
  }
  uint64_t t_stop = rv_now_ns();
  rv_heartbeat_stop(hb);
  uint64_t stop_took = rv_now_ns() - t_stop;
  uint64_t at_stop = rv_load_acquire(&h->learner_heartbeat_ns);
  sleep_ns(30 * NS_PER_MS);
  uint64_t later = rv_load_acquire(&h->learner_heartbeat_ns);
  free(h);
  CHECKF(first >= before, "start did not store a heartbeat (%" PRIu64 ")", first);
  CHECKF(updates == 5, "only %d heartbeat updates in 5 s at a 2 ms period", updates);
  CHECK(at_stop >= prev && at_stop <= t_stop + stop_took);
  CHECKF(later == at_stop, "heartbeat moved after stop");
  CHECKF(stop_took < SLACK_NS, "stop took %.3f s", secs(stop_took));
}

static void should_stop_heartbeat_promptly_even_with_a_long_period(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  void *hb = rv_heartbeat_start(&h->learner_heartbeat_ns, 60 * NS_PER_S);
  CHECK(hb != NULL);
  sleep_ns(20 * NS_PER_MS);
  uint64_t t0 = rv_now_ns();
  rv_heartbeat_stop(hb);
  uint64_t el = rv_now_ns() - t0;
  uint64_t v = h->learner_heartbeat_ns;
  free(h);
  CHECK(v != 0);
  CHECKF(el < SLACK_NS, "stop took %.3f s", secs(el));
}

static void should_use_a_default_period_for_a_non_positive_period(void) {
  rv_header_t *h = segment_new(1);
  CHECK(h);
  void *hb = rv_heartbeat_start(&h->learner_heartbeat_ns, 0);
  CHECK(hb != NULL);
  uint64_t first = rv_load_acquire(&h->learner_heartbeat_ns), end = rv_now_ns() + 5 * NS_PER_S;
  int moved = 0;
  while (!moved && rv_now_ns() < end) {
    sleep_ns(5 * NS_PER_MS);
    moved = rv_load_acquire(&h->learner_heartbeat_ns) != first;
  }
  rv_heartbeat_stop(hb);
  rv_heartbeat_stop(NULL); /* a no-op */
  free(h);
  CHECK(moved);
}

/* ------------------------------------------------------------------ */
/* process helper                                                      */
/* ------------------------------------------------------------------ */

static void should_report_whether_the_parent_is_the_expected_one(void) {
  /* Signal 0 clears the parent-death signal: harmless for this process. */
  CHECK(rv_die_with_parent(0, (int)getppid()) == 0);
  CHECK(rv_die_with_parent(0, (int)getppid() + 1) == -1);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

typedef struct {
  const char *name;
  void (*fn)(void);
} test_t;

#define TEST(fn) {#fn, fn}

static const test_t TESTS[] = {
    TEST(should_lay_out_ring_header_in_four_cache_lines),
    TEST(should_reject_capacity_zero),
    TEST(should_reject_capacity_not_power_of_two),
    TEST(should_accept_every_power_of_two_capacity),
    TEST(should_start_empty_and_pop_nothing),
    TEST(should_pop_in_fifo_order),
    TEST(should_reject_push_when_full),
    TEST(should_free_a_slot_for_push_after_one_pop_from_full),
    TEST(should_push_only_what_fits_when_nearly_full),
    TEST(should_push_at_most_capacity_from_a_larger_batch),
    TEST(should_pop_only_what_is_there_and_leave_the_rest_of_out_alone),
    TEST(should_treat_zero_length_push_and_pop_as_no_ops),
    TEST(should_report_size_after_each_push_and_pop),
    TEST(should_pop_in_fifo_order_across_wrap),
    TEST(should_keep_fifo_order_when_indices_wrap_past_two_to_the_64),
    TEST(should_work_with_capacity_one),
    TEST(should_keep_guarded_pushes_inside_the_ring_whatever_the_consumer_wrote),
    TEST(should_empty_a_used_ring_on_reinit),
    TEST(should_deliver_every_message_once_in_order_between_two_threads),
    TEST(should_keep_the_monotonic_clock_non_decreasing),
    TEST(should_return_at_once_from_futex_wait_when_word_differs),
    TEST(should_time_out_futex_wait_after_its_limit),
    TEST(should_wake_a_futex_sleeper),
    TEST(should_publish_cmd_and_len_and_bump_seq_of_listed_workers_only),
    TEST(should_count_completions_and_errors_in_worker_done),
    TEST(should_return_ok_at_once_when_target_already_reached),
    TEST(should_time_out_wait_done_after_roughly_the_timeout),
    TEST(should_wake_a_learner_sleeping_in_wait_done_on_fault),
    TEST(should_return_fault_to_a_spinning_learner),
    TEST(should_return_fault_at_once_when_a_fault_is_unseen),
    TEST(should_never_lose_a_fault_report_racing_with_the_learner_going_to_sleep),
    TEST(should_wake_a_sleeping_learner_on_the_last_completion_only),
    TEST(should_wait_without_limit_for_a_negative_timeout),
    TEST(should_return_at_once_from_worker_wait_when_a_command_is_pending),
    TEST(should_time_out_worker_wait_after_roughly_the_timeout),
    TEST(should_wake_a_worker_sleeping_in_worker_wait_on_dispatch),
    TEST(should_cut_a_doze_short_when_a_command_comes_and_count_the_wake),
    TEST(should_spin_after_a_doze_and_report_how_late_its_timer_woke),
    TEST(should_count_the_time_a_spin_yields_to_a_thread_on_its_cpu),
    TEST(should_publish_every_round_to_every_worker_with_futex_only),
    TEST(should_publish_every_round_to_every_worker_with_spinning),
    TEST(should_publish_every_round_with_spinning_learner_and_sleeping_workers),
    TEST(should_publish_every_round_with_sleeping_learner_and_spinning_workers),
    TEST(should_complete_rounds_that_dispatch_random_worker_subsets),
    TEST(should_publish_every_round_to_workers_that_doze_then_spin),
    TEST(should_survive_cmd_seq_and_done_count_wrapping_at_two_to_the_32),
    TEST(should_claim_rows_round_robin_over_the_output_ring),
    TEST(should_claim_a_row_in_range_after_a_worker_wrote_over_the_counter),
    TEST(should_complete_a_block_once_batch_rows_are_done_and_empty_it_on_release),
    TEST(should_wake_a_learner_sleeping_in_wait_block_only_for_its_block),
    TEST(should_time_out_and_report_faults_in_wait_block),
    TEST(should_queue_ids_per_worker_and_ring_each_doorbell_in_send),
    TEST(should_hand_over_every_async_row_exactly_once_with_futex_only),
    TEST(should_hand_over_every_async_row_exactly_once_with_spinning),
    TEST(should_refresh_learner_heartbeat_until_stopped),
    TEST(should_stop_heartbeat_promptly_even_with_a_long_period),
    TEST(should_use_a_default_period_for_a_non_positive_period),
    TEST(should_report_whether_the_parent_is_the_expected_one),
};

static int selected(const char *name, int argc, char **argv) {
  int filters = 0;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') continue;
    filters++;
    if (strstr(name, argv[i])) return 1;
  }
  return filters == 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *env = getenv("RV_TEST_SCALE");
  if (env) g_scale = atof(env);
  env = getenv("RV_TEST_TIMEOUT_S");
  if (env) g_wait_timeout_ns = (int64_t)(atof(env) * 1e9);
  int list_only = 0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--scale=", 8) == 0) {
      g_scale = atof(argv[i] + 8);
    } else if (strcmp(argv[i], "--list") == 0) {
      list_only = 1;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: %s [--scale=X] [--list] [name-substring ...]\n", argv[0]);
      return 2;
    }
  }
  if (g_scale <= 0) g_scale = 1.0;
  int passed = 0, failed = 0;
  uint64_t t_all = rv_now_ns();
  for (size_t i = 0; i < sizeof(TESTS) / sizeof(TESTS[0]); i++) {
    const test_t *t = &TESTS[i];
    if (!selected(t->name, argc, argv)) continue;
    if (list_only) {
      puts(t->name);
      continue;
    }
    g_failed = 0;
    __atomic_store_n(&g_async_failed, 0, __ATOMIC_SEQ_CST);
    uint64_t t0 = rv_now_ns();
    t->fn();
    int bad = g_failed || async_failures() != 0;
    printf("%s %s (%.3f s)\n", bad ? "FAIL" : "ok  ", t->name, secs(rv_now_ns() - t0));
    if (bad)
      failed++;
    else
      passed++;
  }
  if (list_only) return 0;
  printf("total %.2f s (scale %g)\n", secs(rv_now_ns() - t_all), g_scale);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
