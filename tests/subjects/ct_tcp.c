/* Container subject: an established TCP connection on loopback between the root (server side,
 * with its listening socket) and a child (client). Bytes in flight at the dump and the echo
 * protocol must survive; needs checkpoint and restore with --tcp-established.
 * Usage: ct_tcp RESULT_FILE */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "ct_common.h"

static void client_main(struct sockaddr_in addr) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c, (struct sockaddr*)&addr, sizeof addr) != 0) _exit(3);
  ct_write_all(c, "early", 5, "client early");
  for (;;) {
    char buf[4];
    ct_read_exact(c, buf, 4, "client");
    for (int i = 0; i < 4; ++i) buf[i] = (char)toupper(buf[i]);
    ct_write_all(c, buf, 4, "client");
  }
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(l, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(l, 4) != 0 ||
      getsockname(l, (struct sockaddr*)&addr, &len) != 0) {
    ct_fail("listen: %s", strerror(errno));
  }
  pid_t child = fork();
  if (child == 0) client_main(addr);
  int s = accept(l, NULL, NULL);
  if (s < 0) ct_fail("accept: %s", strerror(errno));
  ct_sleep_ms(50);
  ct_ready_and_wait();
  char buf[8] = {0};
  ct_read_exact(s, buf, 5, "early bytes");
  if (memcmp(buf, "early", 5) != 0) ct_fail("connection held '%.5s'", buf);
  ct_write_all(s, "ping", 4, "ping");
  ct_read_exact(s, buf, 4, "pong");
  if (memcmp(buf, "PING", 4) != 0) ct_fail("client answered '%.4s'", buf);
  kill(child, SIGKILL);
  if (waitpid(child, NULL, 0) != child) ct_fail("the client is no longer ours");
  ct_ok();
}
