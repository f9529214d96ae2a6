/* Container subject: a unix stream socket pair and a datagram socket pair between two
 * processes, with queued data (and datagram boundaries) that must survive.
 * Usage: ct_unix RESULT_FILE */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <ctype.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "ct_common.h"

static void child_main(int stream, int dgram) {
  ct_write_all(stream, "early", 5, "child early");
  ct_write_all(dgram, "one", 3, "dgram 1");
  ct_write_all(dgram, "two!", 4, "dgram 2");
  for (;;) {
    char buf[4];
    ct_read_exact(stream, buf, 4, "child");
    for (int i = 0; i < 4; ++i) buf[i] = (char)toupper(buf[i]);
    ct_write_all(stream, buf, 4, "child");
  }
}

static void check_dgram(int fd, const char* want) {
  char buf[16] = {0};
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
    ct_fail("datagram '%.*s' (%zd bytes), expected '%s'", (int)(n > 0 ? n : 0), buf, n, want);
  }
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  int s[2], d[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, d) != 0) {
    ct_fail("socketpair: %s", strerror(errno));
  }
  pid_t child = fork();
  if (child == 0) {
    close(s[0]);
    close(d[0]);
    child_main(s[1], d[1]);
  }
  close(s[1]);
  close(d[1]);
  ct_sleep_ms(50);
  ct_ready_and_wait();
  char buf[8] = {0};
  ct_read_exact(s[0], buf, 5, "early bytes");
  if (memcmp(buf, "early", 5) != 0) ct_fail("socket held '%.5s'", buf);
  check_dgram(d[0], "one");
  check_dgram(d[0], "two!");
  ct_write_all(s[0], "ping", 4, "ping");
  ct_read_exact(s[0], buf, 4, "pong");
  if (memcmp(buf, "PING", 4) != 0) ct_fail("child answered '%.4s'", buf);
  kill(child, SIGKILL);
  if (waitpid(child, NULL, 0) != child) ct_fail("the child is no longer ours");
  ct_ok();
}
