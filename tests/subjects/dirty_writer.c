// A subject for dirty-page tracking: allocates a buffer, fills it, then obeys one-line commands
// on stdin and answers each with one line on stdout. With a thread count, writes are done by
// worker threads (round-robin), so the tracker must cope with a multi-threaded process.
//   usage: dirty_writer MIB [THREADS]
//   addr            -> "ok ADDR PAGES"            the buffer
//   w P1 P2 ...     -> "ok"                       writes a new value into pages P1, P2, ...
//   d P N           -> "ok"                       madvise(MADV_DONTNEED) pages [P, P+N)
//   m MIB           -> "ok ADDR"                  maps and fills a new anonymous region
//   r P N           -> "ok"                       replaces pages [P, P+N) by a fresh mapping
//                                                 (MAP_FIXED) and writes them
//   c FD            -> "ok"                       closes descriptor FD (as closefrom would)
//   check           -> "ok" | "bad P"             every page holds what was last written to it
//   q               -> exits 0
// Page P holds its 64-bit value repeated; the value of a page changes with every write.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
#define MAX_THREADS 16

static unsigned char* buf;
static size_t pages;
static uint64_t* expected;  // kept outside buf, in its own mapping
static uint64_t generation = 1;

static void fill(size_t p, uint64_t v) {
  uint64_t* w = (uint64_t*)(buf + p * PAGE);
  for (size_t i = 0; i < PAGE / 8; ++i) w[i] = v;
  expected[p] = v;
}

static uint64_t value(size_t p) { return (generation << 32) ^ (p * 2654435761u) ^ 0x5a5a; }

// Worker threads: each takes the pages with index % nthreads == its id.
static int nthreads;
static size_t* job;
static size_t njob;
static pthread_barrier_t start_bar, done_bar;

static void* worker(void* arg) {
  size_t id = (size_t)arg;
  for (;;) {
    pthread_barrier_wait(&start_bar);
    for (size_t i = id; i < njob; i += (size_t)nthreads) fill(job[i], value(job[i]));
    pthread_barrier_wait(&done_bar);
  }
  return NULL;
}

static void write_pages(size_t* list, size_t n) {
  if (nthreads == 0) {
    for (size_t i = 0; i < n; ++i) fill(list[i], value(list[i]));
  } else {
    job = list, njob = n;
    pthread_barrier_wait(&start_bar);
    pthread_barrier_wait(&done_bar);
  }
  ++generation;
}

static void check(void) {
  for (size_t p = 0; p < pages; ++p) {
    const uint64_t* w = (const uint64_t*)(buf + p * PAGE);
    for (size_t i = 0; i < PAGE / 8; ++i) {
      if (w[i] != expected[p]) {
        printf("bad %zu\n", p);
        return;
      }
    }
  }
  printf("ok\n");
}

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 16;
  nthreads = argc > 2 ? atoi(argv[2]) : 0;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  pages = mib * 256;
  buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  expected =
      mmap(NULL, pages * 8 + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED || expected == MAP_FAILED) return 2;
  for (size_t p = 0; p < pages; ++p) fill(p, value(p));
  ++generation;
  if (nthreads > 0) {
    pthread_barrier_init(&start_bar, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&done_bar, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; ++i) {
      pthread_t t;
      if (pthread_create(&t, NULL, worker, (void*)(size_t)i) != 0) return 3;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  static char line[1 << 20];
  static size_t list[1 << 18];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "addr", 4) == 0) {
      printf("ok %lx %zu\n", (unsigned long)buf, pages);
    } else if (line[0] == 'w') {
      size_t n = 0;
      char* s = line + 1;
      for (char* end; n < sizeof list / sizeof list[0]; s = end) {
        unsigned long p = strtoul(s, &end, 10);
        if (end == s) break;
        if (p < pages) list[n++] = p;
      }
      write_pages(list, n);
      printf("ok\n");
    } else if (line[0] == 'd') {
      unsigned long p = 0, n = 0;
      sscanf(line + 1, "%lu %lu", &p, &n);
      madvise(buf + p * PAGE, n * PAGE, MADV_DONTNEED);
      for (unsigned long i = p; i < p + n && i < pages; ++i) expected[i] = 0;
      printf("ok\n");
    } else if (line[0] == 'm') {
      size_t len = strtoul(line + 1, NULL, 10) << 20;
      unsigned char* m =
          mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) return 4;
      memset(m, 0x77, len);
      printf("ok %lx\n", (unsigned long)m);
    } else if (line[0] == 'r') {
      unsigned long p = 0, n = 0;
      sscanf(line + 1, "%lu %lu", &p, &n);
      if (mmap(buf + p * PAGE, n * PAGE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
        return 5;
      for (unsigned long i = p; i < p + n && i < pages; ++i) fill(i, value(i));
      ++generation;
      printf("ok\n");
    } else if (line[0] == 'c' && line[1] == ' ') {
      close(atoi(line + 2));
      printf("ok\n");
    } else if (strncmp(line, "check", 5) == 0) {
      check();
    } else if (line[0] == 'q') {
      return 0;
    } else {
      printf("? %s", line);
    }
  }
  return 0;
}
