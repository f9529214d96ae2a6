// Holds /proc/self/stat open (as a program that reads its own RSS keeps it for an instant) until
// a file named "release" appears in its working directory, then closes it and counts: the
// decimal count, rewritten in place in the file "count" every 20 ms. A checkpoint taken while
// the file is open names /proc/<host PID>/stat, which no restored copy can open again.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  int stat_fd = open("/proc/self/stat", O_RDONLY);
  if (stat_fd < 0) return 2;
  while (access("release", F_OK) != 0) usleep(20000);
  close(stat_fd);
  int out = open("count", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) return 3;
  for (unsigned long n = 1;; ++n) {
    char line[32];
    int len = snprintf(line, sizeof line, "%020lu\n", n);
    if (pwrite(out, line, (size_t)len, 0) != len) return 4;
    usleep(20000);
  }
}
