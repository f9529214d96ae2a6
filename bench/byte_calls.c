// Byte-call benchmark subject: the cost of one fast-path syscall. A loop of small pread64 calls
// on a cached file and small writes to /dev/null, the calls glibc makes from the syscall sites the
// recorder patches (README "How it works"), with nothing else between them.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 200000;
  int in = open("/usr/bin/bash", O_RDONLY);
  int out = open("/dev/null", O_WRONLY);
  if (in < 0 || out < 0) return 1;
  char buf[8];
  long sum = 0;
  for (int i = 0; i < iterations; ++i) {
    sum += pread(in, buf, sizeof buf, (i * 64L) % 65536);
    sum += write(out, buf, sizeof buf);
  }
  printf("%ld\n", sum);
  return 0;
}
