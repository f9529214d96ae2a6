// The vDSO's clock calls, which a recording logs through its fast path (syscall buffer), mixed
// with the ones it traces, in the situations the fast path must get right. Prints a digest of
// every value it read, so a replay that returns anything else prints something else.
//   clock_calls loop N      N rounds of clock_gettime (two clocks), gettimeofday, time(NULL),
//                           and every 7th round the traced forms (a time zone, time(&t))
//   clock_calls signals N   a 1 ms interval timer interrupts a clock_gettime loop N times;
//                           prints at which calls the handler ran
//   clock_calls wait        one thread polls the clock until another, which first sleeps in
//                           the kernel, sets a flag: the poller must give the turn away
//   clock_calls threads N   two threads each make N clock calls, taking a lock around them
//   clock_calls scribble    overwrites relive's syscall buffer header, then reads the clock
//   clock_calls direct N    N rounds of the vDSO's clock_gettime and gettimeofday around the same
//                           calls made with syscall(2), which no trampoline sees
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static uint64_t digest = 1469598103934665603ull;

static void mix(uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    digest ^= (v >> (8 * i)) & 0xff;
    digest *= 1099511628211ull;
  }
}

static void mix_ts(const struct timespec* ts) {
  mix((uint64_t)ts->tv_sec);
  mix((uint64_t)ts->tv_nsec);
}

static int loop(long n) {
  struct timespec ts;
  struct timeval tv;
  struct timezone tz;
  for (long i = 0; i < n; ++i) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mix_ts(&ts);
    clock_gettime(CLOCK_REALTIME, &ts);
    mix_ts(&ts);
    gettimeofday(&tv, NULL);
    mix((uint64_t)tv.tv_sec);
    mix((uint64_t)tv.tv_usec);
    mix((uint64_t)time(NULL));
    if (i % 7 == 0) {
      time_t t;
      mix((uint64_t)time(&t));
      mix((uint64_t)t);
      gettimeofday(&tv, &tz);
      mix((uint64_t)tv.tv_usec);
    }
  }
  printf("loop %ld digest %016llx\n", n, (unsigned long long)digest);
  return 0;
}

static volatile sig_atomic_t ticks;
static volatile long call_no;
static long seen[1000];

static void on_alarm(int sig) {
  (void)sig;
  if (ticks < 1000) seen[ticks] = call_no;
  ticks = ticks + 1;
}

static int signals(long n) {
  if (n > 1000) n = 1000;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &it, NULL);
  struct timespec ts;
  while (ticks < n) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mix_ts(&ts);
    call_no = call_no + 1;
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  printf("signals %ld at calls", n);
  for (long i = 0; i < n; ++i) printf(" %ld", seen[i]);
  printf(" digest %016llx\n", (unsigned long long)digest);
  return 0;
}

static atomic_int flag;

static void* sleeper(void* arg) {
  (void)arg;
  struct timespec d = {0, 20 * 1000 * 1000};
  nanosleep(&d, NULL);
  atomic_store(&flag, 1);
  return NULL;
}

static int wait_for_flag(void) {
  pthread_t t;
  pthread_create(&t, NULL, sleeper, NULL);
  struct timespec ts;
  long polls = 0;
  while (!atomic_load(&flag)) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mix_ts(&ts);
    ++polls;
  }
  pthread_join(t, NULL);
  mix((uint64_t)polls);
  printf("wait %s digest %016llx\n", polls > 0 ? "polled" : "never polled",
         (unsigned long long)digest);
  return 0;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long per_thread;

static void* worker(void* arg) {
  (void)arg;
  struct timespec ts;
  for (long i = 0; i < per_thread; ++i) {
    pthread_mutex_lock(&lock);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mix_ts(&ts);
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

static int threads(long n) {
  per_thread = n;
  pthread_t a, b;
  pthread_create(&a, NULL, worker, NULL);
  pthread_create(&b, NULL, worker, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  printf("threads %ld digest %016llx\n", n, (unsigned long long)digest);
  return 0;
}

static int scribble(void) {
  uint64_t* header = (uint64_t*)0x70000002000ull;  // tracee/syscall_buffer.h
  header[0] = 0x1234;
  header[1] = 5;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  printf("clock read after the scribble\n");
  return 0;
}

static int direct(long n) {
  struct timespec ts;
  struct timeval tv;
  for (long i = 0; i < n; ++i) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mix_ts(&ts);
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    mix_ts(&ts);
    if (i % 3 == 0) {
      syscall(SYS_gettimeofday, &tv, NULL);
      mix((uint64_t)tv.tv_usec);
    }
    gettimeofday(&tv, NULL);
    mix((uint64_t)tv.tv_usec);
  }
  printf("direct %ld digest %016llx\n", n, (unsigned long long)digest);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  long n = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
  if (strcmp(argv[1], "loop") == 0) return loop(n);
  if (strcmp(argv[1], "signals") == 0) return signals(n);
  if (strcmp(argv[1], "wait") == 0) return wait_for_flag();
  if (strcmp(argv[1], "threads") == 0) return threads(n);
  if (strcmp(argv[1], "scribble") == 0) return scribble();
  if (strcmp(argv[1], "direct") == 0) return direct(n);
  return 2;
}
