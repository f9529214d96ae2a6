/* Shared harness of the ct_* container subjects and the mig_* migration subjects (zdtm style):
 * a subject detaches from its caller, sets up some state, reports "READY" in its result file
 * and waits (ct_*) or keeps working (mig_*) until SIGUSR1, which the test sends after the
 * checkpoint and restore, or the migration. It then checks its own state and reports "OK" or
 * "FAIL <reason>" in the same file, and exits.
 *
 * The result file is opened and closed for every report (never held open): CRIU refuses to
 * restore a regular file whose size changed between dump and restore. */
#pragma once

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char* ct_result_path;
static volatile sig_atomic_t ct_go;

static void ct_on_usr1(int sig) {
  (void)sig;
  ct_go = 1;
}

/* Writes `text` as the whole result file, atomically (temporary file and rename). */
static void ct_report(const char* text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", ct_result_path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) _exit(90);
  if (write(fd, text, strlen(text)) < 0) _exit(91);
  close(fd);
  if (rename(tmp, ct_result_path) != 0) _exit(92);
}

static void ct_fail(const char* fmt, ...) {
  char msg[1024] = "FAIL ";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + 5, sizeof msg - 6, fmt, ap);
  va_end(ap);
  strcat(msg, "\n");
  ct_report(msg);
  _exit(1);
}

static void ct_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Detaches (new session, stdio on /dev/null, no inherited fds) so that the tree holds nothing
 * of the test's: CRIU would need --shell-job or --ext-unix-sk otherwise. */
static void ct_init(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s RESULT_FILE [args]\n", argv[0]);
    exit(2);
  }
  ct_result_path = argv[1];
  setsid();
  int null = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) dup2(null, fd);
  close_range(3, ~0u, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = ct_on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
}

/* Reports READY and sleeps until SIGUSR1. */
__attribute__((unused)) static void ct_ready_and_wait(void) {
  char msg[64];
  snprintf(msg, sizeof msg, "READY %d\n", (int)getpid());
  ct_report(msg);
  while (!ct_go) ct_sleep_ms(5);
}

/* Reports READY and runs `step` over and over until SIGUSR1 (the migration subjects, mig_*.c:
 * they keep working while they are moved, and check their state once told they arrived). */
__attribute__((unused)) static void ct_ready_and_run(void (*step)(void)) {
  char msg[64];
  snprintf(msg, sizeof msg, "READY %d\n", (int)getpid());
  ct_report(msg);
  while (!ct_go) step();
}

static void ct_ok(void) {
  ct_report("OK\n");
  exit(0);
}

/* Reads exactly n bytes or fails the subject. */
__attribute__((unused)) static void ct_read_exact(int fd, void* buf, size_t n, const char* what) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char*)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) ct_fail("%s: read returned %zd (%s)", what, r, strerror(errno));
    got += (size_t)r;
  }
}

__attribute__((unused)) static void ct_write_all(int fd, const void* buf, size_t n,
                                                 const char* what) {
  if (write(fd, buf, n) != (ssize_t)n) ct_fail("%s: write failed: %s", what, strerror(errno));
}
