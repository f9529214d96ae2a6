// A 1 ms interval timer over a compute loop without system calls, then the timer stopped. Prints
// whether a handler ran at all and how many of its runs found the loop where the previous run had
// left it ("bursts") beyond what the timer's ticks explain: each such run needs a tick of its own
// after the run that saw that counter first, so k of them take at least k - 1 periods. A native
// run has none beyond that, so a recording has none either (a recorder that queued every tick it
// held over the loop delivers them one per system call, dozens within a period).
//   signal_burst [N]   N passes of the loop (default 100,000,000)
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const long kPeriodNs = 1000000;
static volatile unsigned long counter = 0;
static volatile unsigned long last_seen = ~0ul;
static volatile int ticks = 0, bursts = 0;
static volatile long long last_run_ns = 0, idle_since_ns = 0, last_burst_ns = 0;

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_alarm(int sig) {
  (void)sig;
  long long now = now_ns();
  if (counter == last_seen) {
    if (bursts++ == 0) idle_since_ns = last_run_ns;
    last_burst_ns = now;
  }
  last_seen = counter;
  last_run_ns = now;
  ++ticks;
}

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000000L;
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  if (sigaction(SIGALRM, &sa, NULL) != 0) return 1;
  struct itimerval every_ms = {{0, kPeriodNs / 1000}, {0, kPeriodNs / 1000}};
  if (setitimer(ITIMER_REAL, &every_ms, NULL) != 0) return 1;
  for (long i = 0; i < n; ++i) counter = counter + 1;
  struct itimerval off = {{0, 0}, {0, 0}};
  if (setitimer(ITIMER_REAL, &off, NULL) != 0) return 1;
  // A few system calls before the result is printed: the boundaries where a recorder delivers
  // the signals it held.
  for (int i = 0; i < 20; ++i) (void)getpgrp();
  // The counter stops moving only when the loop ends, so every burst is one idle stretch: the
  // first burst's tick came after the run that began it, each further one a period later (one
  // more is allowed for a tick that lands while the handler runs).
  long explained = 0;
  if (bursts > 0) explained = 2 + (long)((last_burst_ns - idle_since_ns) / kPeriodNs);
  long unexplained = bursts > explained ? bursts - explained : 0;
  printf("ticks: %s, bursts no tick explains: %ld\n", ticks > 0 ? "some" : "none", unexplained);
  return 0;
}
