// Several threads increment a shared counter under a mutex and signal a condition variable;
// prints a deterministic-at-replay summary including thread interleaving and timing.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter = 0;
static int order[64];
static int order_len = 0;

static void* worker(void* arg) {
  int id = (int)(long)arg;
  for (int i = 0; i < 2000; ++i) {
    pthread_mutex_lock(&mu);
    ++counter;
    if (i % 500 == 0 && order_len < 64) order[order_len++] = id;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    if (i % 100 == 0) usleep(100);
  }
  return NULL;
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 4;
  pthread_t th[16];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < n; ++i) pthread_create(&th[i], NULL, worker, (void*)(long)i);
  pthread_mutex_lock(&mu);
  while (counter < 2000L * n) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < n; ++i) pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("counter=%ld elapsed_ns=%ld order=", counter,
         (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));
  for (int i = 0; i < order_len; ++i) printf("%d", order[i]);
  printf("\n");
  return counter == 2000L * n ? 0 : 1;
}
