// A long-running counter for --pid attach tests: every 20 ms it advances a state that mixes in
// the clock and randomness, and prints "n state" on stdout. A replay from a checkpoint must
// print the same lines, proving it reached the same state.
//   counter [LIMIT [dispatch-before|dispatch-later]]
// With a second argument the process uses syscall user dispatch itself, as emulators and Wine
// do, its selector at "allow" so that its calls run as usual: turned on before the first line or
// after the 40th. A recorder must neither replace it nor lose calls to it.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_ON 1
#endif

static volatile char selector = 0; /* SYSCALL_DISPATCH_FILTER_ALLOW */

static int dispatch_on(void) {
  return prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, &selector);
}

int main(int argc, char** argv) {
  long limit = argc > 1 ? atol(argv[1]) : 1000000;
  const char* dispatch = argc > 2 ? argv[2] : "";
  if (strcmp(dispatch, "dispatch-before") == 0 && dispatch_on() != 0) return 3;
  uint64_t state = 1469598103934665603ull;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 1; n <= limit; ++n) {
    if (n == 41 && strcmp(dispatch, "dispatch-later") == 0 && dispatch_on() != 0) return 3;
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
