#define _GNU_SOURCE
#include "rv_process.h"

#include <sys/prctl.h>
#include <unistd.h>

int rv_die_with_parent(int sig, int expected_parent) {
  if (prctl(PR_SET_PDEATHSIG, sig) != 0) return -1;
  /* The parent may have died between fork and prctl: no signal then. */
  return getppid() == expected_parent ? 0 : -1;
}
