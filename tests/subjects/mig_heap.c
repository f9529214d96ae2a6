/* Migration subject: a large heap (MiB given, 512 by default) rewritten page by page while it is
 * moved, at a bounded rate. Each page holds (index, generation, check word); a pass rewrites
 * every page with the next generation. Checks as it goes and once more after the move: every
 * page belongs to this pass or the previous one and is self-consistent.
 * Usage: mig_heap RESULT_FILE [MIB] */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>

#include "ct_common.h"

static uint64_t* heap;
static uint64_t pages, next, gen = 1;

static uint64_t check_word(uint64_t i, uint64_t g) {
  return (i * 0x9E3779B97F4A7C15u) ^ (g * 0xC2B2AE3D27D4EB4Fu);
}

static void verify(uint64_t i) {
  uint64_t* p = heap + i * 512;
  uint64_t g = p[1];
  if (p[0] != i || p[2] != check_word(i, g) || p[511] != check_word(i, g) ||
      (g != gen && g + 1 != gen))
    ct_fail("page %llu is damaged (index %llu, generation %llu, pass %llu)", (unsigned long long)i,
            (unsigned long long)p[0], (unsigned long long)g, (unsigned long long)gen);
}

static void write_page(uint64_t i, uint64_t g) {
  uint64_t* p = heap + i * 512;
  p[0] = i;
  p[1] = g;
  p[2] = p[511] = check_word(i, g);
}

static void step(void) {
  for (int k = 0; k < 64; ++k) { /* 256 KiB per step */
    verify(next);
    write_page(next, gen);
    if (++next == pages) next = 0, ++gen;
  }
  ct_sleep_ms(2);
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 512;
  pages = mib * 256;
  heap = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (heap == MAP_FAILED) ct_fail("mmap %llu MiB", (unsigned long long)mib);
  for (uint64_t i = 0; i < pages; ++i) write_page(i, 0);
  ct_ready_and_run(step);
  for (int i = 0; i < 200; ++i) step();
  for (uint64_t i = 0; i < pages; ++i) verify(i);
  ct_ok();
}
