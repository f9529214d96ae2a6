// Threads incrementing a shared counter under a spinlock (pthread_spin_lock: a pure user-space
// spin while another thread holds it) and handing work through a single-producer single-consumer
// lock-free ring. Usage: spin_lock THREADS ITERATIONS ITEMS. Prints the counter and the
// consumer's checksum; exits 0 when both are what they must be.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_spinlock_t lock;
static long counter;
static int iterations;

static void* incrementer(void* arg) {
  (void)arg;
  for (int i = 0; i < iterations; ++i) {
    pthread_spin_lock(&lock);
    ++counter;
    pthread_spin_unlock(&lock);
  }
  return NULL;
}

#define RING 16
static long ring[RING];
static atomic_uint head, tail;
static int items;

static void* producer(void* arg) {
  (void)arg;
  for (int i = 1; i <= items; ++i) {
    unsigned h = atomic_load_explicit(&head, memory_order_relaxed);
    while (h - atomic_load_explicit(&tail, memory_order_acquire) == RING) __builtin_ia32_pause();
    ring[h % RING] = i;
    atomic_store_explicit(&head, h + 1, memory_order_release);
  }
  return NULL;
}

static void* consumer(void* arg) {
  long* sum = arg;
  for (int i = 1; i <= items; ++i) {
    unsigned t = atomic_load_explicit(&tail, memory_order_relaxed);
    while (atomic_load_explicit(&head, memory_order_acquire) == t) __builtin_ia32_pause();
    *sum += ring[t % RING] * (i % 7 + 1);
    atomic_store_explicit(&tail, t + 1, memory_order_release);
  }
  return NULL;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  iterations = argc > 2 ? atoi(argv[2]) : 100000;
  items = argc > 3 ? atoi(argv[3]) : 1000;
  if (threads < 1 || threads > 32) return 2;
  pthread_spin_init(&lock, PTHREAD_PROCESS_PRIVATE);
  pthread_t t[32], p, c;
  long sum = 0;
  for (int i = 0; i < threads; ++i) pthread_create(&t[i], NULL, incrementer, NULL);
  pthread_create(&c, NULL, consumer, &sum);
  pthread_create(&p, NULL, producer, NULL);
  for (int i = 0; i < threads; ++i) pthread_join(t[i], NULL);
  pthread_join(p, NULL);
  pthread_join(c, NULL);
  long want = 0;
  for (int i = 1; i <= items; ++i) want += (long)i * (i % 7 + 1);
  printf("counter %ld sum %ld\n", counter, sum);
  return counter == (long)threads * iterations && sum == want ? 0 : 1;
}
