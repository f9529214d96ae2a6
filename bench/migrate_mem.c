// Subject of the live-migration benchmark (bench/migrate.py): a 256 MiB (or argv[3] MiB) array,
// filled with random bytes, then either
//   write: dirties PAGES_PER_TICK pages (one 8-byte store each, walking the array) every 100 ms,
//   read:  reads the same number of pages every 100 ms and never writes again.
// Usage: migrate_mem write|read RESULT_FILE [MiB] [PAGES_PER_TICK]
// Writes "READY <pid>" to RESULT_FILE once filled. On SIGUSR1 (sent after the migration) it checks
// every page's fill pattern and that no page holds a store from the future, writes "OK <ticks>"
// or "FAIL ..." there, and exits. Holds no file open, so CRIU can move it anywhere.
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static volatile sig_atomic_t check_requested;

static void on_usr1(int sig) {
  (void)sig;
  check_requested = 1;
}

static void put_result(const char* path, const char* text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE* f = fopen(tmp, "w");
  if (!f) exit(2);
  fputs(text, f);
  fclose(f);
  rename(tmp, path);
}

static uint64_t pattern(uint64_t page) { return page * 0x9e3779b97f4a7c15ull; }

int main(int argc, char** argv) {
  if (argc < 3 || (strcmp(argv[1], "write") != 0 && strcmp(argv[1], "read") != 0)) {
    fprintf(stderr, "usage: %s write|read RESULT_FILE [MiB] [PAGES_PER_TICK]\n", argv[0]);
    return 64;
  }
  int writer = strcmp(argv[1], "write") == 0;
  const char* result = argv[2];
  uint64_t mib = argc > 3 ? strtoull(argv[3], NULL, 10) : 256;
  uint64_t per_tick = argc > 4 ? strtoull(argv[4], NULL, 10) : 3000;
  uint64_t pages = mib * 1024 * 1024 / PAGE;
  unsigned char* a =
      mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) return 1;
  // Random bytes: LZ4 must not make the copy look cheaper than real heaps would.
  uint64_t x = 88172645463325252ull;
  for (uint64_t p = 0; p < pages; ++p) {
    uint64_t* words = (uint64_t*)(a + p * PAGE);
    for (unsigned i = 2; i < PAGE / 8; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      words[i] = x;
    }
    ((uint64_t*)(a + p * PAGE))[1] = pattern(p);
    ((uint64_t*)(a + p * PAGE))[0] = 0;  // the tick of the last store into this page
  }
  signal(SIGUSR1, on_usr1);
  char text[256];
  snprintf(text, sizeof text, "READY %d\n", (int)getpid());
  put_result(result, text);

  uint64_t cursor = 0, tick = 0, sum = 0;
  struct timespec pause = {0, 100 * 1000 * 1000};
  while (!check_requested) {
    ++tick;
    for (uint64_t i = 0; i < per_tick; ++i, cursor = (cursor + 7) % pages) {
      uint64_t* w = (uint64_t*)(a + cursor * PAGE);
      if (writer) {
        w[0] = tick;
      } else {
        sum += w[1];
      }
    }
    nanosleep(&pause, NULL);
  }
  for (uint64_t p = 0; p < pages; ++p) {
    const uint64_t* w = (const uint64_t*)(a + p * PAGE);
    if (w[1] != pattern(p) || w[0] > tick) {
      snprintf(text, sizeof text, "FAIL page %llu: %llx %llx\n", (unsigned long long)p,
               (unsigned long long)w[0], (unsigned long long)w[1]);
      put_result(result, text);
      return 1;
    }
  }
  snprintf(text, sizeof text, "OK %llu %llu\n", (unsigned long long)tick,
           (unsigned long long)(sum & 1));
  put_result(result, text);
  return 0;
}
