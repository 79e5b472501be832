/*
 * rv_process.h - tying a worker's life to its parent's.
 */
#ifndef RV_PROCESS_H
#define RV_PROCESS_H

/* The calling process gets `sig` when its parent dies (PR_SET_PDEATHSIG).
 * Returns 0, or -1 if the parent is already gone (its pid differs from
 * expected_parent), in which case the caller should exit. Call right after
 * fork, in the child. */
int rv_die_with_parent(int sig, int expected_parent);

#endif /* RV_PROCESS_H */
