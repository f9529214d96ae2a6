/* Container subject: two processes talking over a pair of pipes. Bytes the child wrote before
 * the dump and the parent had not read yet must survive in the pipe; the child must still echo.
 * Usage: ct_pipe RESULT_FILE */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <ctype.h>
#include <sys/wait.h>

#include "ct_common.h"

static void echo_loop(int in, int out) {
  ct_write_all(out, "early", 5, "child early");
  for (;;) {
    char buf[4];
    ct_read_exact(in, buf, 4, "child");
    for (int i = 0; i < 4; ++i) buf[i] = (char)toupper(buf[i]);
    ct_write_all(out, buf, 4, "child");
  }
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  int p2c[2], c2p[2];
  if (pipe(p2c) != 0 || pipe(c2p) != 0) ct_fail("pipe: %s", strerror(errno));
  pid_t child = fork();
  if (child == 0) {
    close(p2c[1]);
    close(c2p[0]);
    echo_loop(p2c[0], c2p[1]);
  }
  close(p2c[0]);
  close(c2p[1]);
  ct_sleep_ms(50);  // the child's "early" is in the pipe, unread
  ct_ready_and_wait();
  char buf[8] = {0};
  ct_read_exact(c2p[0], buf, 5, "early bytes");
  if (memcmp(buf, "early", 5) != 0) ct_fail("pipe held '%.5s'", buf);
  ct_write_all(p2c[1], "ping", 4, "ping");
  ct_read_exact(c2p[0], buf, 4, "pong");
  if (memcmp(buf, "PING", 4) != 0) ct_fail("child answered '%.4s'", buf);
  kill(child, SIGKILL);
  if (waitpid(child, NULL, 0) != child) ct_fail("the child is no longer ours");
  ct_ok();
}
