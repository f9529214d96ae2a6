// Clock-heavy benchmark subject: N reads of the monotonic clock through glibc (the vDSO), the
// way a program that timestamps every request or polls a deadline reads it. Prints a checksum so
// the reads cannot be optimized away.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  unsigned long sum = 0;
  struct timespec ts;
  for (long i = 0; i < n; ++i) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sum += (unsigned long)ts.tv_nsec;
  }
  printf("%ld reads, checksum %lu\n", n, sum);
  return 0;
}
