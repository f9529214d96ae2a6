// CPU-bound workload for the HA benchmark (bench/ha.py): hashes in a loop and, every 100 ms,
// overwrites ./progress with the number of work units done so far. The benchmark reads the
// file twice to get the work rate, protected by relived at various epoch rates or not.
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void) {
  int fd = open("progress", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 1;
  uint64_t h = 1469598103934665603ull, units = 0;
  double next = now() + 0.1;
  for (;;) {
    for (int i = 0; i < 100000; ++i) h = (h ^ (uint64_t)i) * 1099511628211ull;
    ++units;
    if (now() >= next) {
      char line[64];
      int n = snprintf(line, sizeof line, "%020llu %016llx\n", (unsigned long long)units,
                       (unsigned long long)h);
      if (pwrite(fd, line, (size_t)n, 0) != n) return 1;
      next += 0.1;
    }
  }
}
