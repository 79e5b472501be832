"""cffi build script for rock_vec._core (API mode), run by `pip install`.

The cdef below repeats only what Python calls; struct fields are declared
with `...;` so cffi takes every offset and size from the real headers.
"""
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent

CDEF = """
typedef struct { uint32_t cmd_seq; uint32_t cmd; uint64_t cmd_len; uint64_t cmd_ns;
  uint32_t sleeping; uint32_t done_seq; uint32_t status; uint32_t state;
  uint64_t reply_len; uint64_t heartbeat_ns; uint64_t env_steps;
  uint64_t busy_ns; int32_t pid; uint32_t woken; int32_t exit_code; int32_t exit_signal;
  int32_t host_pid; uint32_t restarts; ...; } rv_worker_slot_t;
typedef struct { uint64_t magic; uint32_t version; uint32_t header_size;
  uint64_t total_size; uint32_t num_envs; uint32_t num_workers;
  uint64_t workers_off; uint64_t manifest_off; uint64_t manifest_len;
  uint64_t learner_heartbeat_ns; int32_t learner_pid; uint32_t closing; uint32_t learner_crowded;
  uint32_t done_count; uint32_t done_target; uint32_t learner_sleeping;
  uint32_t wake_seq; uint32_t fault_count; uint32_t error_count;
  uint32_t rows_claimed; uint32_t block_waited; ...; } rv_header_t;
typedef struct { uint64_t head; uint64_t tail; uint64_t capacity; ...; } rv_spsc_ring_t;

#define RV_MAGIC ...
#define RV_FORMAT_VERSION ...
#define RV_CACHE_LINE ...
enum rv_cmd { RV_CMD_NONE, RV_CMD_STEP, RV_CMD_RESET, RV_CMD_CALL, RV_CMD_CLOSE, RV_CMD_DRAIN };
#define RV_FILL_STRIDE ...
enum rv_worker_state { RV_WORKER_STARTING, RV_WORKER_READY, RV_WORKER_EXITED, RV_WORKER_DEAD };
enum rv_status { RV_STATUS_OK, RV_STATUS_ERROR };
enum rv_result { RV_OK, RV_TIMEOUT, RV_FAULT, RV_FULL, RV_EMPTY, RV_ERR };

uint64_t rv_now_ns(void);
void rv_dispatch(rv_worker_slot_t *slots, const uint32_t *workers, uint32_t n,
                 uint32_t cmd, uint64_t cmd_len);
int rv_wait_done(rv_header_t *h, uint32_t target, uint32_t faults_seen,
                 int64_t spin_ns, int64_t timeout_ns);
typedef struct { uint32_t seq; uint32_t asleep; int64_t doze_late_ns; int64_t stolen_ns; ...; } rv_wait_seen_t;
int rv_worker_wait(rv_worker_slot_t *s, uint32_t last_seq, int64_t doze_ns, int64_t spin_ns,
                   int64_t timeout_ns, rv_wait_seen_t *seen);
int rv_set_timer_slack(uint64_t ns);
int rv_current_cpu(void);
void rv_worker_done(rv_header_t *h, rv_worker_slot_t *s, uint32_t seq,
                    uint32_t status, uint64_t reply_len, uint32_t n);
uint32_t rv_claim_row(rv_header_t *h, uint32_t rows);
void rv_row_done(rv_header_t *h, uint32_t *fills, uint32_t row, uint32_t batch);
int rv_wait_block(rv_header_t *h, uint32_t *fills, uint32_t block, uint32_t batch,
                  uint32_t faults_seen, int64_t spin_ns, int64_t timeout_ns);
void rv_release_block(uint32_t *fills, uint32_t block);
int rv_send(rv_worker_slot_t *slots, void **rings, uint64_t capacity, const uint32_t *workers,
            const uint32_t *counts, uint32_t n_workers, const uint64_t *ids);
void rv_report_fault(rv_header_t *h);
void *rv_heartbeat_start(uint64_t *word, int64_t period_ns);
void rv_heartbeat_stop(void *heartbeat);

size_t rv_spsc_ring_bytes(uint64_t capacity);
int rv_spsc_ring_init(rv_spsc_ring_t *r, uint64_t capacity);
uint32_t rv_spsc_ring_push(rv_spsc_ring_t *r, const uint64_t *msgs, uint32_t n);
uint32_t rv_spsc_ring_push_guarded(rv_spsc_ring_t *r, uint64_t capacity, const uint64_t *msgs, uint32_t n);
uint32_t rv_spsc_ring_pop(rv_spsc_ring_t *r, uint64_t *out, uint32_t max);
uint64_t rv_spsc_ring_size(const rv_spsc_ring_t *r);

int rv_die_with_parent(int sig, int expected_parent);
"""

SOURCES = ["rv_futex.c", "rv_signal.c", "rv_pool.c", "rv_blocks.c", "rv_heartbeat.c", "rv_spsc_ring.c",
           "rv_process.c"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "rock_vec._core",
    '#include "rv_pool.h"\n#include "rv_blocks.h"\n#include "rv_heartbeat.h"\n#include "rv_process.h"\n'
    '#include "rv_spsc_ring.h"\n',
    sources=[f"csrc/{name}" for name in SOURCES],
    include_dirs=["csrc", "shm"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
