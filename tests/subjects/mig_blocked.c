/* Migration subject: sits blocked in one system call for the whole move — read on an empty
 * pipe, epoll_wait on it, or nanosleep — until SIGUSR1, whose handler writes a byte into the
 * pipe. A 1 MiB pattern set up before blocking must be intact afterwards, and the syscall must
 * have come back the way the mode says (the byte read, the pipe readable, the sleep cut short).
 * Usage: mig_blocked RESULT_FILE read|epoll|sleep */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/epoll.h>

#include "ct_common.h"

static int p[2];
static unsigned char pattern[1 << 20];

static void on_usr1(int sig) {
  (void)sig;
  ct_go = 1;
  char b = 'g';
  (void)!write(p[1], &b, 1);
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  const char* mode = argc > 2 ? argv[2] : "read";
  if (pipe(p) != 0) ct_fail("pipe");
  for (size_t i = 0; i < sizeof pattern; ++i) pattern[i] = (unsigned char)(i * 13 + 1);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; /* no SA_RESTART: the blocked call returns EINTR or completes */
  sigaction(SIGUSR1, &sa, NULL);
  char msg[64];
  snprintf(msg, sizeof msg, "READY %d\n", (int)getpid());
  ct_report(msg);
  if (strcmp(mode, "read") == 0) {
    char b = 0;
    ssize_t n;
    do n = read(p[0], &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1 || b != 'g') ct_fail("read returned %zd", n);
  } else if (strcmp(mode, "epoll") == 0) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0) ct_fail("epoll setup");
    struct epoll_event got;
    int n;
    do n = epoll_wait(ep, &got, 1, -1);
    while (n < 0 && errno == EINTR);
    if (n != 1 || got.data.fd != p[0]) ct_fail("epoll_wait returned %d", n);
  } else {
    struct timespec ts = {3600, 0};
    while (!ct_go) nanosleep(&ts, NULL);
  }
  if (!ct_go) ct_fail("woke up before SIGUSR1");
  for (size_t i = 0; i < sizeof pattern; ++i)
    if (pattern[i] != (unsigned char)(i * 13 + 1)) ct_fail("pattern byte %zu differs", i);
  ct_ok();
}
