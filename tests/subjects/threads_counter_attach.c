// A multi-threaded counter for --pid attach tests. Every 20 ms the main thread advances a state
// that mixes in the clock, randomness and what its waiter, poller and helpers did, and prints
// "n state" (the cruncher's value is left out: how far a thread that shares memory without a
// syscall got between two of the main thread's calls is not reproduced exactly yet):
//   - a waiter, blocked in pthread_cond_wait (a futex) until the main thread signals it;
//   - a poller, blocked in epoll_wait on a pipe the main thread writes a byte to;
//   - a cruncher, in a compute loop that sleeps half a millisecond every 20000 steps;
//   - every 25 lines, a helper thread created for one computation and joined.
// A replay from a checkpoint taken while all of them run must print the same lines.
//   threads_counter_attach [LIMIT]
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t ticks_seen, waiter_sum, poller_sum, cruncher_state = 88172645463325252ull;
static uint64_t ticks;
static int pipe_fds[2];

static void* waiter(void* arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (ticks_seen == ticks) pthread_cond_wait(&cv, &mu);
    ticks_seen = ticks;
    waiter_sum = waiter_sum * 31 + ticks_seen;
  }
  return NULL;
}

static void* poller(void* arg) {
  (void)arg;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pipe_fds[0], &ev) != 0) exit(4);
  for (;;) {
    struct epoll_event got;
    if (epoll_wait(ep, &got, 1, -1) != 1) continue;
    unsigned char b;
    if (read(pipe_fds[0], &b, 1) != 1) exit(5);
    pthread_mutex_lock(&mu);
    poller_sum = poller_sum * 131 + b;
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

static void* cruncher(void* arg) {
  (void)arg;
  uint64_t x = 2463534242ull;
  for (;;) {
    for (int i = 0; i < 20000; ++i) x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    pthread_mutex_lock(&mu);
    cruncher_state ^= x;
    pthread_mutex_unlock(&mu);
    usleep(500);
  }
  return NULL;
}

static void* helper(void* arg) {
  uint64_t* v = arg;
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) exit(6);
  *v = *v * 1099511628211ull ^ r;
  return NULL;
}

int main(int argc, char** argv) {
  long limit = argc > 1 ? atol(argv[1]) : 1000000;
  if (pipe(pipe_fds) != 0) return 2;
  pthread_t t;
  if (pthread_create(&t, NULL, waiter, NULL) || pthread_create(&t, NULL, poller, NULL) ||
      pthread_create(&t, NULL, cruncher, NULL))
    return 3;
  uint64_t state = 1469598103934665603ull;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long n = 1; n <= limit; ++n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) return 2;
    uint64_t extra = n;
    if (n % 25 == 0) {
      pthread_t h;
      if (pthread_create(&h, NULL, helper, &extra) || pthread_join(h, NULL)) return 3;
    }
    pthread_mutex_lock(&mu);
    ++ticks;
    pthread_cond_signal(&cv);
    state = (state ^ (uint64_t)ts.tv_nsec ^ r ^ waiter_sum ^ poller_sum ^ extra) * 1099511628211ull;
    pthread_mutex_unlock(&mu);
    unsigned char b = (unsigned char)r;
    if (write(pipe_fds[1], &b, 1) != 1) return 2;
    printf("%ld %016llx\n", n, (unsigned long long)state);
    usleep(20000);
  }
  return 0;
}
