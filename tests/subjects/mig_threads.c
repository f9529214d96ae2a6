/* Migration subject: four worker threads increment a shared counter under a mutex and their own
 * counters; the shared one must equal the sum of the others, and every thread must still run
 * after the move.
 * Usage: mig_threads RESULT_FILE */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>

#include "ct_common.h"

#define T 4
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t shared, own[T];
static volatile int stop;

static void* worker(void* arg) {
  int me = (int)(intptr_t)arg;
  while (!stop) {
    pthread_mutex_lock(&mu);
    ++shared;
    ++own[me];
    pthread_mutex_unlock(&mu);
    if (own[me] % 1000 == 0) ct_sleep_ms(1);
  }
  return NULL;
}

static void step(void) { ct_sleep_ms(5); }

int main(int argc, char** argv) {
  ct_init(argc, argv);
  pthread_t th[T];
  for (int i = 0; i < T; ++i) pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i);
  ct_ready_and_run(step);
  uint64_t before[T];
  pthread_mutex_lock(&mu);
  for (int i = 0; i < T; ++i) before[i] = own[i];
  pthread_mutex_unlock(&mu);
  ct_sleep_ms(200);
  stop = 1;
  for (int i = 0; i < T; ++i) pthread_join(th[i], NULL);
  uint64_t total = 0;
  for (int i = 0; i < T; ++i) {
    if (own[i] <= before[i]) ct_fail("thread %d did not run after the move", i);
    total += own[i];
  }
  if (total != shared)
    ct_fail("shared counter %llu, threads counted %llu", (unsigned long long)shared,
            (unsigned long long)total);
  ct_ok();
}
