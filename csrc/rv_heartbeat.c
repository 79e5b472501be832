#define _GNU_SOURCE
#include "rv_heartbeat.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "rv_atomic.h"
#include "rv_futex.h"

typedef struct rv_heartbeat {
  uint64_t *word;
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
    rv_store_release(hb->word, rv_now_ns());
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

void *rv_heartbeat_start(uint64_t *word, int64_t period_ns) {
  rv_heartbeat_t *hb = calloc(1, sizeof(*hb));
  if (!hb) return NULL;
  hb->word = word;
  hb->period_ns = period_ns > 0 ? period_ns : 100000000;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&hb->stop_cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&hb->lock, NULL);
  rv_store_release(word, rv_now_ns());
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
