#include "rv_spsc_ring.h"

#include "rv_atomic.h"

size_t rv_spsc_ring_bytes(uint64_t capacity) {
  return sizeof(rv_spsc_ring_t) + capacity * sizeof(uint64_t) + 64;
}

int rv_spsc_ring_init(rv_spsc_ring_t *r, uint64_t capacity) {
  if (capacity == 0 || (capacity & (capacity - 1)) != 0) return RV_ERR;
  r->capacity = capacity;
  r->mask = capacity - 1;
  r->head_cache = r->tail_cache = 0;
  rv_store_relaxed(&r->tail, 0);
  /* Release: publishes capacity/mask to whoever acquires head first. */
  rv_store_release(&r->head, 0);
  return RV_OK;
}

uint32_t rv_spsc_ring_push(rv_spsc_ring_t *r, const uint64_t *msgs, uint32_t n) {
  return rv_spsc_ring_push_guarded(r, r->capacity, msgs, n);
}

uint32_t rv_spsc_ring_push_guarded(rv_spsc_ring_t *r, uint64_t capacity, const uint64_t *msgs, uint32_t n) {
  uint64_t mask = capacity - 1;
  uint64_t head = rv_load_relaxed(&r->head); /* our own index */
  uint64_t free_slots = capacity - (head - r->tail_cache);
  if (free_slots < n) {
    /* Acquire: the consumer is done reading the slots it released. */
    r->tail_cache = rv_load_acquire(&r->tail);
    free_slots = capacity - (head - r->tail_cache);
  }
  uint32_t count = free_slots < n ? (uint32_t)free_slots : n;
  for (uint32_t i = 0; i < count; i++) r->slots[(head + i) & mask] = msgs[i];
  /* Release: publishes the slots just written; pairs with the consumer's
   * acquire load of head in rv_spsc_ring_pop. */
  if (count) rv_store_release(&r->head, head + count);
  return count;
}

uint32_t rv_spsc_ring_pop(rv_spsc_ring_t *r, uint64_t *out, uint32_t max) {
  uint64_t tail = rv_load_relaxed(&r->tail); /* our own index */
  uint64_t avail = r->head_cache - tail;
  if (avail < max) {
    /* Acquire: pairs with the producer's release store of head. */
    r->head_cache = rv_load_acquire(&r->head);
    avail = r->head_cache - tail;
  }
  uint32_t count = avail < max ? (uint32_t)avail : max;
  for (uint32_t i = 0; i < count; i++) out[i] = r->slots[(tail + i) & r->mask];
  /* Release: the slots read may now be overwritten; pairs with the
   * producer's acquire load of tail. */
  if (count) rv_store_release(&r->tail, tail + count);
  return count;
}

uint64_t rv_spsc_ring_size(const rv_spsc_ring_t *r) {
  uint64_t tail = rv_load_acquire(&r->tail);
  uint64_t head = rv_load_acquire(&r->head);
  return head - tail;
}
