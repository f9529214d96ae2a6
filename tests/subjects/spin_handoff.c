// Threads that hand a token around through an atomic word, each spinning on it with no syscall
// while it waits (spinlocks, lock-free queues and adaptive mutexes wait this way). Usage:
// spin_handoff THREADS ROUNDS [memory-counter]. With "memory-counter" every pass of the wait loop
// also increments a shared counter (a loop whose state changes on every pass). Prints the final
// token and a checksum of the hand-off order; exits 0 when every thread saw every round.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int token;
static atomic_ulong order_sum;
static volatile unsigned long spins;
static int threads, rounds, count_spins;

static void* worker(void* arg) {
  int me = (int)(long)arg;
  for (int r = 0; r < rounds; ++r) {
    while (atomic_load_explicit(&token, memory_order_acquire) % threads != me) {
      if (count_spins) spins = spins + 1;
      __builtin_ia32_pause();
    }
    atomic_fetch_add(&order_sum, (unsigned long)(me + 1) * (unsigned long)(r + 1));
    atomic_fetch_add_explicit(&token, 1, memory_order_release);
  }
  return NULL;
}

int main(int argc, char** argv) {
  threads = argc > 1 ? atoi(argv[1]) : 2;
  rounds = argc > 2 ? atoi(argv[2]) : 20;
  count_spins = argc > 3 && strcmp(argv[3], "memory-counter") == 0;
  if (threads < 1 || threads > 64 || rounds < 1) return 2;
  pthread_t t[64];
  for (int i = 0; i < threads; ++i) pthread_create(&t[i], NULL, worker, (void*)(long)i);
  for (int i = 0; i < threads; ++i) pthread_join(t[i], NULL);
  printf("token %d order %lu\n", atomic_load(&token), atomic_load(&order_sum));
  return atomic_load(&token) == threads * rounds ? 0 : 1;
}
