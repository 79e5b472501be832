/*
 * rv_atomic.h - named-order atomics and the CPU relax hint.
 *
 * Every shared access in rock_vec goes through these helpers so that each
 * load and store says which order it needs. Only GCC/Clang builtins on
 * x86-64 and AArch64 are supported; anything else stops the build.
 */
#ifndef RV_ATOMIC_H
#define RV_ATOMIC_H

#include <stdint.h>

#if !defined(__GNUC__)
#error "rock_vec needs GCC or Clang __atomic builtins"
#endif

#if defined(__x86_64__) || defined(__i386__)
#define rv_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define rv_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#error "rock_vec supports x86-64 and AArch64 only"
#endif

#define rv_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define rv_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define rv_load_seq_cst(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define rv_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define rv_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define rv_store_seq_cst(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define rv_fetch_add_relaxed(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define rv_fetch_add_release(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
#define rv_fetch_add_acq_rel(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define rv_fetch_add_seq_cst(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)

#endif /* RV_ATOMIC_H */
