/* Container subject: an open regular file (with its offset) and a deleted-but-open file (whose
 * contents only CRIU's ghost-file image holds after the dump) must come back.
 * Usage: ct_files RESULT_FILE DIR */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <sys/stat.h>

#include "ct_common.h"

#define GHOST_BYTES (256 * 1024)

static char ghost_byte(size_t i) { return (char)('a' + (i * 7) % 26); }

static void check_open_file(int fd) {
  char buf[16] = {0};
  if (lseek(fd, 0, SEEK_CUR) != 6) ct_fail("open file offset is %ld", (long)lseek(fd, 0, SEEK_CUR));
  ct_read_exact(fd, buf, 4, "open file");
  if (memcmp(buf, "open", 4) != 0) ct_fail("open file holds '%.4s'", buf);
}

static void check_ghost(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_nlink != 0) ct_fail("deleted file has links again");
  if (st.st_size != GHOST_BYTES) ct_fail("deleted file size %ld", (long)st.st_size);
  static char buf[GHOST_BYTES];
  if (pread(fd, buf, GHOST_BYTES, 0) != GHOST_BYTES) ct_fail("pread deleted file");
  for (size_t i = 0; i < GHOST_BYTES; ++i) {
    if (buf[i] != ghost_byte(i)) ct_fail("deleted file byte %zu is %d", i, buf[i]);
  }
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  if (argc < 3) ct_fail("usage: ct_files RESULT_FILE DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/open.txt", argv[2]);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  ct_write_all(fd, "hello open file", 15, "open file");
  lseek(fd, 6, SEEK_SET);
  snprintf(path, sizeof path, "%s/deleted.bin", argv[2]);
  int ghost = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  static char buf[GHOST_BYTES];
  for (size_t i = 0; i < GHOST_BYTES; ++i) buf[i] = ghost_byte(i);
  ct_write_all(ghost, buf, GHOST_BYTES, "deleted file");
  if (unlink(path) != 0) ct_fail("unlink: %s", strerror(errno));
  ct_ready_and_wait();
  check_open_file(fd);
  check_ghost(ghost);
  ct_ok();
}
