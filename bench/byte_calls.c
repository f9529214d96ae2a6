// Byte-call benchmark subject: the cost of one fast-path syscall. A loop of small pread64 calls
// on a cached file and small writes to /dev/null, the calls glibc makes from the syscall sites the
// recorder patches (README "How it works"), with nothing else between them.
//   byte_calls [N]           N loops (default 200,000), then prints a checksum
//   byte_calls N --on-input  waits for a byte on stdin first (a recorder attaches meanwhile), then
//                            prints the loop's own time in ns and the checksum
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 200000;
  int on_input = argc > 2 && strcmp(argv[2], "--on-input") == 0;
  int in = open("/usr/bin/bash", O_RDONLY);
  int out = open("/dev/null", O_WRONLY);
  if (in < 0 || out < 0) return 1;
  char buf[8];
  if (on_input && read(0, buf, 1) != 1) return 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long sum = 0;
  for (int i = 0; i < iterations; ++i) {
    sum += pread(in, buf, sizeof buf, (i * 64L) % 65536);
    sum += write(out, buf, sizeof buf);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (on_input)
    printf("%lld %ld\n", (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec), sum);
  else
    printf("%ld\n", sum);
  return 0;
}
