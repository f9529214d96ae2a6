/* Container subject: several threads, each counting in its own slot, must all still run after
 * the restore.
 * Usage: ct_threads RESULT_FILE */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "ct_common.h"

#define THREADS 4

static atomic_ulong counts[THREADS];
static atomic_int tids[THREADS];

static void* worker(void* arg) {
  long i = (long)arg;
  atomic_store(&tids[i], (int)syscall(SYS_gettid));
  for (;;) {
    atomic_fetch_add(&counts[i], 1);
    ct_sleep_ms(1);
  }
  return NULL;
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; ++i) {
    if (pthread_create(&t[i], NULL, worker, (void*)i) != 0) ct_fail("pthread_create");
  }
  ct_sleep_ms(50);
  ct_ready_and_wait();
  unsigned long before[THREADS];
  for (int i = 0; i < THREADS; ++i) before[i] = atomic_load(&counts[i]);
  ct_sleep_ms(300);
  for (int i = 0; i < THREADS; ++i) {
    unsigned long now = atomic_load(&counts[i]);
    if (now <= before[i] + 10) ct_fail("thread %d counted %lu -> %lu", i, before[i], now);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d", atomic_load(&tids[i]));
    if (access(path, F_OK) != 0) ct_fail("thread %d (tid %d) is gone", i, atomic_load(&tids[i]));
  }
  ct_ok();
}
