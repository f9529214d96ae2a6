// A 1 ms interval timer over a compute loop without system calls, then the timer stopped. Prints
// whether a handler ran at all and how many of its runs found the loop where the previous run had
// left it ("bursts"): none in a native run (the handler takes microseconds, the period is a
// millisecond), so none in a recording either.
//   signal_burst [N]   N passes of the loop (default 100,000,000)
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

static volatile unsigned long counter = 0;
static volatile unsigned long last_seen = ~0ul;
static volatile int ticks = 0, bursts = 0;

static void on_alarm(int sig) {
  (void)sig;
  if (counter == last_seen) ++bursts;
  last_seen = counter;
  ++ticks;
}

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000000L;
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  if (sigaction(SIGALRM, &sa, NULL) != 0) return 1;
  struct itimerval every_ms = {{0, 1000}, {0, 1000}};
  if (setitimer(ITIMER_REAL, &every_ms, NULL) != 0) return 1;
  for (long i = 0; i < n; ++i) counter = counter + 1;
  struct itimerval off = {{0, 0}, {0, 0}};
  if (setitimer(ITIMER_REAL, &off, NULL) != 0) return 1;
  // A few system calls before the result is printed: the boundaries where a recorder delivers
  // the signals it held.
  for (int i = 0; i < 20; ++i) (void)getpgrp();
  printf("ticks: %s, bursts: %d\n", ticks > 0 ? "some" : "none", bursts);
  return 0;
}
