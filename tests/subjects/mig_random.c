/* Migration subject for the bandwidth cap: a heap (MiB given, 32 by default) of random bytes, so
 * that LZ4 cannot shrink what crosses the link, rewritten PAGES (default 16) pages every 10 ms
 * while it is moved (pre-copy gets rounds to do). Page i of generation g holds i, g, and 510
 * words of a xorshift stream seeded by (i, g); after the move every page must be whole and of
 * the current pass or the previous one.
 * With INPUT_KIB it also takes that many KiB of input per step (getrandom: nondeterministic
 * input a recorder must log, from no file) once AFTER_MS have passed since it was ready: a
 * workload whose input rate rises in the middle of a migration.
 * Usage: mig_random RESULT_FILE [MIB] [PAGES] [INPUT_KIB [AFTER_MS]] */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "ct_common.h"

static uint64_t* heap;
static uint64_t pages, per_step, next, gen = 1;
static uint64_t input, input_after_ms, input_sum;
static char* input_buf;
static struct timespec ready_at;

static uint64_t ms_since(const struct timespec* t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)(now.tv_sec - t->tv_sec) * 1000 + (uint64_t)(now.tv_nsec / 1000000) -
         (uint64_t)(t->tv_nsec / 1000000);
}

static uint64_t seed(uint64_t i, uint64_t g) {
  return (i * 0x9E3779B97F4A7C15u) ^ (g * 0xC2B2AE3D27D4EB4Fu) ^ 0x2545F4914F6CDD1Du;
}

static uint64_t xorshift(uint64_t* x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

static void write_page(uint64_t i, uint64_t g) {
  uint64_t* p = heap + i * 512;
  uint64_t x = seed(i, g);
  p[0] = i;
  p[1] = g;
  for (int w = 2; w < 512; ++w) p[w] = xorshift(&x);
}

static void verify(uint64_t i) {
  uint64_t* p = heap + i * 512;
  uint64_t g = p[1], x = seed(i, g);
  int whole = p[0] == i && (g == gen || g + 1 == gen);
  for (int w = 2; whole && w < 512; ++w) whole = p[w] == xorshift(&x);
  if (!whole)
    ct_fail("page %llu is damaged (index %llu, generation %llu, pass %llu)", (unsigned long long)i,
            (unsigned long long)p[0], (unsigned long long)g, (unsigned long long)gen);
}

static void step(void) {
  for (uint64_t k = 0; k < per_step; ++k) {
    write_page(next, gen);
    if (++next == pages) next = 0, ++gen;
  }
  if (input > 0 && ms_since(&ready_at) >= input_after_ms) {
    for (uint64_t got = 0; got < input;) {
      ssize_t n = getrandom(input_buf + got, input - got, 0);
      if (n > 0) got += (uint64_t)n;
    }
    input_sum += (unsigned char)input_buf[input - 1];
  }
  ct_sleep_ms(10);
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 32;
  per_step = argc > 3 ? strtoull(argv[3], NULL, 10) : 16;
  pages = mib * 256;
  input = argc > 4 ? strtoull(argv[4], NULL, 10) * 1024 : 0;
  input_after_ms = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
  if (input > 0 && (input_buf = malloc(input)) == NULL) ct_fail("malloc");
  heap = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (heap == MAP_FAILED) ct_fail("mmap %llu MiB", (unsigned long long)mib);
  for (uint64_t i = 0; i < pages; ++i) write_page(i, 0);
  clock_gettime(CLOCK_MONOTONIC, &ready_at);
  ct_ready_and_run(step);
  for (uint64_t i = 0; i < pages; ++i) verify(i);
  ct_ok();
}
