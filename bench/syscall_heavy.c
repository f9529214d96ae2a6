// Syscall-heavy benchmark subject: a program that does real I/O in small pieces, the way a log
// shipper or a line-oriented filter does: reads a file 4 KiB at a time, stats it, and writes a
// summary line per block to /dev/null, with a clock read per block.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "/usr/bin/bash";
  int passes = argc > 2 ? atoi(argv[2]) : 20;
  int out = open("/dev/null", O_WRONLY);
  char buf[4096], line[128];
  unsigned long sum = 0, blocks = 0;
  for (int p = 0; p < passes; ++p) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 1;
    struct stat st;
    fstat(fd, &st);
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      for (ssize_t i = 0; i < n; i += 64) sum += (unsigned char)buf[i];
      int len = snprintf(line, sizeof line, "%lu %ld %ld\n", blocks++, (long)n, (long)ts.tv_nsec);
      write(out, line, (size_t)len);
    }
    close(fd);
  }
  printf("%lu blocks, sum %lu\n", blocks, sum);
  return 0;
}
