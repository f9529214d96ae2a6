/* Container subject: a large buffer filled with a pattern must come back intact.
 * Usage: ct_memory RESULT_FILE [MIB]  (default 64 MiB) */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <stdint.h>
#include <sys/mman.h>

#include "ct_common.h"

static uint64_t pattern(size_t i) { return (i * 0x9e3779b97f4a7c15ull) ^ 0x5a5a5a5a12345678ull; }

int main(int argc, char** argv) {
  ct_init(argc, argv);
  size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 64;
  size_t words = mib * (1u << 20) / sizeof(uint64_t);
  uint64_t* buf = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) ct_fail("mmap: %s", strerror(errno));
  for (size_t i = 0; i < words; ++i) buf[i] = pattern(i);
  ct_ready_and_wait();
  for (size_t i = 0; i < words; ++i) {
    if (buf[i] != pattern(i)) ct_fail("word %zu is %llx", i, (unsigned long long)buf[i]);
  }
  ct_ok();
}
