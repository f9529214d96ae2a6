// A process whose behaviour depends on input the recorder cannot see: a value read from a
// MAP_SHARED file mapping that another process rewrites. It passes the value to lseek(2) on
// /dev/null (a syscall whose arguments replay checks) and appends a count to a file.
// Usage: shared_reader SHARED_FILE COUNT_FILE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) return 64;
  int fd = open(argv[1], O_RDONLY);
  int null_fd = open("/dev/null", O_RDONLY);
  if (fd < 0 || null_fd < 0) return 1;
  const volatile uint64_t* shared = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
  if (shared == MAP_FAILED) return 1;
  for (unsigned long n = 0;; ++n) {
    lseek(null_fd, (off_t)(*shared % 1000000), SEEK_SET);
    FILE* out = fopen(argv[2], "a");
    if (out == NULL) return 1;
    fprintf(out, "%lu\n", n);
    fclose(out);
    usleep(10000);
  }
}
