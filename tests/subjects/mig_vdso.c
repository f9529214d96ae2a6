/* Migration subject: a tight compute loop over a 16 MiB array that reads the clock through the
 * vDSO every few thousand iterations (clock_gettime, gettimeofday, time), so that a freeze is
 * likely to find it inside the vDSO or right after. Checks: the monotonic clock never goes
 * back, and a checksum kept incrementally matches the array's recomputed one.
 * Usage: mig_vdso RESULT_FILE */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/time.h>

#include "ct_common.h"

#define N (16u << 20) / 8

static uint64_t* a;
static uint64_t sum, iter;
static struct timespec last;

static uint64_t ns(const struct timespec* t) {
  return (uint64_t)t->tv_sec * 1000000000u + t->tv_nsec;
}

static void step(void) {
  for (int k = 0; k < 4000; ++k, ++iter) {
    uint64_t i = (iter * 2654435761u) % N;
    uint64_t v = a[i] * 6364136223846793005u + iter;
    sum += v - a[i];
    a[i] = v;
  }
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (ns(&now) < ns(&last)) ct_fail("CLOCK_MONOTONIC went back");
  last = now;
  if (iter % 64000 == 0) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (time(NULL) < tv.tv_sec - 1) ct_fail("time() is behind gettimeofday()");
  }
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  a = malloc(N * sizeof *a);
  if (!a) ct_fail("malloc");
  for (uint64_t i = 0; i < N; ++i) sum += a[i] = i;
  clock_gettime(CLOCK_MONOTONIC, &last);
  ct_ready_and_run(step);
  uint64_t at_signal = iter;
  while (iter < at_signal + 400000) step(); /* carries on where it is now */
  uint64_t check = 0;
  for (uint64_t i = 0; i < N; ++i) check += a[i];
  if (check != sum)
    ct_fail("array checksum %llu, kept %llu", (unsigned long long)check, (unsigned long long)sum);
  ct_ok();
}
