/*
 * rv_spsc_ring.h - a bounded single-producer single-consumer ring of 64-bit
 * messages that lives in shared memory (so producer and consumer may be
 * different processes or containers).
 *
 *   line 0  head, tail_cache     producer-owned
 *   line 1  tail, head_cache     consumer-owned
 *   line 2  capacity, mask       constant after init
 *   line 3  padding              keeps slot 0 off the consumer's line
 *   slots   capacity x uint64_t
 *   +1 line padding              keeps the last slot off a neighbour's line
 *
 * Indices grow without bound (64-bit) and are masked on access, so "full"
 * is head - tail == capacity and no slot is wasted. Each side refreshes its
 * cached copy of the other side's index only when the fast check fails.
 */
#ifndef RV_SPSC_RING_H
#define RV_SPSC_RING_H

#include <stddef.h>
#include <stdint.h>

#include "rv_futex.h"

typedef struct rv_spsc_ring {
  uint64_t head;       /* next slot the producer writes */
  uint64_t tail_cache; /* producer's last view of tail */
  uint8_t _pad0[64 - 16];
  uint64_t tail;       /* next slot the consumer reads */
  uint64_t head_cache; /* consumer's last view of head */
  uint8_t _pad1[64 - 16];
  uint64_t capacity; /* a power of two */
  uint64_t mask;
  uint8_t _pad2[64 - 16];
  uint8_t _pad3[64];
  uint64_t slots[];
} rv_spsc_ring_t;

_Static_assert(offsetof(rv_spsc_ring_t, tail) == 64, "consumer line");
_Static_assert(offsetof(rv_spsc_ring_t, capacity) == 128, "constant line");
_Static_assert(offsetof(rv_spsc_ring_t, slots) == 256, "slots after a pad line");

/* Bytes a ring of `capacity` messages occupies (header, slots, tail pad). */
size_t rv_spsc_ring_bytes(uint64_t capacity);

/* Either side, once, before any other call and before the other side
 * attaches. Returns RV_ERR unless capacity is a power of two >= 1. */
int rv_spsc_ring_init(rv_spsc_ring_t *r, uint64_t capacity);

/* Producer only. Appends up to n messages in order; returns how many fit
 * (0 when full). Never blocks. */
uint32_t rv_spsc_ring_push(rv_spsc_ring_t *r, const uint64_t *msgs, uint32_t n);

/* Producer only, when the consumer is not trusted. As rv_spsc_ring_push, but
 * with the capacity the producer gave rv_spsc_ring_init, never the one in
 * shared memory (the consumer can write there): every write stays inside
 * the ring's slots whatever the consumer wrote over its indices; a garbage
 * tail can only cost messages, never memory. Never blocks. */
uint32_t rv_spsc_ring_push_guarded(rv_spsc_ring_t *r, uint64_t capacity, const uint64_t *msgs, uint32_t n);

/* Consumer only. Removes up to max messages in order into out; returns how
 * many (0 when empty). Never blocks. */
uint32_t rv_spsc_ring_pop(rv_spsc_ring_t *r, uint64_t *out, uint32_t max);

/* Either side. Messages in the ring at some instant during the call. */
uint64_t rv_spsc_ring_size(const rv_spsc_ring_t *r);

#endif /* RV_SPSC_RING_H */
