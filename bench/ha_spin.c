// CPU-bound workload for the HA benchmark (bench/ha.py): hashes in a loop and, every 100 ms,
// overwrites ./progress with the number of work units done so far. The benchmark reads the
// file twice to get the work rate, protected by relived at various epoch rates or not.
//
//   ha_spin [MIB PERCENT]   also holds MIB MiB of memory (written once at start) and rewrites
//                           PERCENT % of it per second, page by page, spread over the second.
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  size_t pages = argc > 2 ? (size_t)atol(argv[1]) * 256 : 0;
  double per_s = argc > 2 ? atof(argv[2]) / 100.0 * (double)pages : 0;
  unsigned char* mem = NULL;
  if (pages > 0) {
    mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 1;
    memset(mem, 1, pages * 4096);
  }
  int fd = open("progress", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 1;
  uint64_t h = 1469598103934665603ull, units = 0;
  double start = now(), next = start + 0.1, written = 0;
  size_t cursor = 0;
  for (;;) {
    for (int i = 0; i < 100000; ++i) h = (h ^ (uint64_t)i) * 1099511628211ull;
    ++units;
    double t = now();
    // Rewrite pages to keep up with PERCENT % of the memory per second.
    for (; mem != NULL && written < (t - start) * per_s; written += 1) {
      mem[cursor * 4096] = (unsigned char)h;
      cursor = (cursor + 7919) % pages;  // a prime stride: every page in turn, scattered
    }
    if (t >= next) {
      char line[64];
      int n = snprintf(line, sizeof line, "%020llu %016llx\n", (unsigned long long)units,
                       (unsigned long long)h);
      if (pwrite(fd, line, (size_t)n, 0) != n) return 1;
      next += 0.1;
    }
  }
}
