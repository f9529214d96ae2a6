// A long-running counter for --pid attach tests: every 20 ms it advances a state that mixes in
// the clock and randomness, and prints "n state" on stdout. A replay from a checkpoint must
// print the same lines, proving it reached the same state.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  long limit = argc > 1 ? atol(argv[1]) : 1000000;
  uint64_t state = 1469598103934665603ull;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 1; n <= limit; ++n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) return 2;
    state = (state ^ (uint64_t)ts.tv_nsec ^ r) * 1099511628211ull;
    printf("%ld %016llx\n", n, (unsigned long long)state);
    usleep(20000);
  }
  return 0;
}
