/*
 * rv_result.h - the result codes every rock_vec C call returns.
 */
#ifndef RV_RESULT_H
#define RV_RESULT_H

enum rv_result {
  RV_OK = 0,
  RV_TIMEOUT = 1, /* the deadline passed first */
  RV_FAULT = 2,   /* a worker was reported dead while waiting */
  RV_FULL = 3,    /* a ring could not take every message */
  RV_EMPTY = 4,   /* a ring had nothing to take */
  RV_ERR = -1,    /* bad argument or failed syscall; errno says which */
};

#endif /* RV_RESULT_H */
