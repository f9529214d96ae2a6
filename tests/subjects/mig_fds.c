/* Migration subject: descriptors with state in the kernel. A pipe and a unix socket pair each
 * carry numbered 512-byte records with several in flight at any time; a file that was deleted
 * while open holds a 64 KiB pattern that is read back; a file opened with O_APPEND gets one
 * line per step. After the move: the record sequences go on without a gap, the deleted file's
 * content is intact, and the appended file holds every line once, in order.
 * Usage: mig_fds RESULT_FILE */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ct_common.h"

#define REC 512
#define IN_FLIGHT 4
static int pipefd[2], sock[2], ghost, append_fd;
static uint64_t sent_pipe, got_pipe, sent_sock, got_sock, lines;
static char append_path[4096];

static void put(int fd, uint64_t n, const char* what) {
  char buf[REC];
  memset(buf, (int)(n & 0xff), sizeof buf);
  memcpy(buf, &n, sizeof n);
  ct_write_all(fd, buf, sizeof buf, what);
}

static void take(int fd, uint64_t want, const char* what) {
  char buf[REC];
  ct_read_exact(fd, buf, sizeof buf, what);
  uint64_t n;
  memcpy(&n, buf, sizeof n);
  if (n != want)
    ct_fail("%s: record %llu arrived, expected %llu", what, (unsigned long long)n,
            (unsigned long long)want);
  for (size_t i = sizeof n; i < sizeof buf; ++i)
    if ((unsigned char)buf[i] != (n & 0xff))
      ct_fail("%s: record %llu is damaged", what, (unsigned long long)n);
}

static void check_ghost(uint64_t block) {
  char buf[4096];
  off_t at = (off_t)(block % 16) * 4096;
  if (pread(ghost, buf, sizeof buf, at) != sizeof buf) ct_fail("deleted file: short read");
  for (size_t i = 0; i < sizeof buf; ++i)
    if ((unsigned char)buf[i] != (unsigned char)((at + i) * 7))
      ct_fail("deleted file: byte %lld differs", (long long)(at + i));
}

static void step(void) {
  put(pipefd[1], sent_pipe++, "pipe");
  take(pipefd[0], got_pipe++, "pipe");
  put(sock[0], sent_sock++, "unix socket");
  take(sock[1], got_sock++, "unix socket");
  check_ghost(lines);
  char line[32];
  int n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)lines++);
  ct_write_all(append_fd, line, (size_t)n, "append");
  ct_sleep_ms(2);
}

static void check_appended(void) {
  FILE* f = fopen(append_path, "r");
  if (!f) ct_fail("cannot reopen the appended file");
  unsigned long long v, want = 0;
  while (fscanf(f, "%llu", &v) == 1) {
    if (v != want) ct_fail("appended file: line %llu holds %llu", want, v);
    ++want;
  }
  fclose(f);
  if (want != lines)
    ct_fail("appended file holds %llu lines, %llu were written", want, (unsigned long long)lines);
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", ct_result_path);
  snprintf(append_path, sizeof append_path, "%s/mig_fds.append", dirname(dir));
  if (pipe(pipefd) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sock) != 0)
    ct_fail("pipe/socketpair");
  char ghost_path[4200];
  snprintf(ghost_path, sizeof ghost_path, "%s.ghost", append_path);
  ghost = open(ghost_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (ghost < 0) ct_fail("create %s", ghost_path);
  for (int i = 0; i < 65536; ++i) {
    unsigned char b = (unsigned char)(i * 7);
    ct_write_all(ghost, &b, 1, "deleted file");
  }
  unlink(ghost_path);
  append_fd = open(append_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (append_fd < 0) ct_fail("create %s", append_path);
  for (int i = 0; i < IN_FLIGHT; ++i) {
    put(pipefd[1], sent_pipe++, "pipe");
    put(sock[0], sent_sock++, "unix socket");
  }
  ct_ready_and_run(step);
  for (int i = 0; i < 100; ++i) step();
  check_appended();
  ct_ok();
}
