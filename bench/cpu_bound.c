// CPU-bound benchmark subject: integer hashing and a small sort, almost no syscalls.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  long rounds = argc > 1 ? atol(argv[1]) : 40;
  enum { N = 1 << 16 };
  static uint64_t v[N];
  uint64_t h = 1469598103934665603ull;
  for (long r = 0; r < rounds; ++r) {
    for (int i = 0; i < N; ++i) {
      h = (h ^ (uint64_t)i ^ (uint64_t)r) * 1099511628211ull;
      v[i] = h >> 7;
    }
    qsort(v, N, sizeof v[0], cmp);
    h ^= v[N / 2];
  }
  printf("%016llx\n", (unsigned long long)h);
  return 0;
}
