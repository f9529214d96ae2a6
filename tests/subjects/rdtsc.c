// Reads the time-stamp counter directly (rdtsc and rdtscp, no vDSO, no syscall) and prints the
// values: a recording that traps rdtsc replays these exact numbers. Checks its own state: the
// counter never goes backwards.
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 5;
  unsigned long long last = 0;
  for (int i = 0; i < n; ++i) {
    unsigned aux = 0;
    unsigned long long a = __rdtsc(), b = __rdtscp(&aux);
    if (a < last || b < a) {
      fprintf(stderr, "the TSC went backwards\n");
      return 1;
    }
    last = b;
    printf("%d %llu %llu %u\n", i, a, b, aux);
  }
  return 0;
}
