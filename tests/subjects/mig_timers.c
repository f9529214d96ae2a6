/* Migration subject: a periodic itimer (SIGALRM), a periodic POSIX timer (SIGRTMIN), signal
 * handlers, and a blocked signal left pending across the move. After the move both timers must
 * keep firing and the pending signal must still be pending, then delivered when unblocked.
 * Usage: mig_timers RESULT_FILE */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/time.h>

#include "ct_common.h"

static volatile sig_atomic_t alarms, ticks, usr2;

static void on_alarm(int sig) {
  (void)sig;
  ++alarms;
}
static void on_tick(int sig) {
  (void)sig;
  ++ticks;
}
static void on_usr2(int sig) {
  (void)sig;
  usr2 = 1;
}

static void step(void) {
  volatile uint64_t x = 0;
  for (int i = 0; i < 20000; ++i) x += (uint64_t)i * i;
  ct_sleep_ms(1);
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = on_tick;
  sigaction(SIGRTMIN, &sa, NULL);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigprocmask(SIG_BLOCK, &block, NULL);
  raise(SIGUSR2); /* pending from here until after the move */

  struct itimerval it = {{0, 10000}, {0, 10000}};
  if (setitimer(ITIMER_REAL, &it, NULL) != 0) ct_fail("setitimer: %s", strerror(errno));
  struct sigevent ev;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGRTMIN;
  timer_t t;
  if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0) ct_fail("timer_create: %s", strerror(errno));
  struct itimerspec ts = {{0, 7000000}, {0, 7000000}};
  if (timer_settime(t, 0, &ts, NULL) != 0) ct_fail("timer_settime: %s", strerror(errno));
  ct_sleep_ms(50);
  if (alarms == 0 || ticks == 0) ct_fail("timers never fired before the move");

  ct_ready_and_run(step);
  sig_atomic_t a0 = alarms, t0 = ticks;
  for (int i = 0; i < 300; ++i) step();
  if (alarms - a0 < 10) ct_fail("the itimer fired %d times after the move", (int)(alarms - a0));
  if (ticks - t0 < 10) ct_fail("the POSIX timer fired %d times after the move", (int)(ticks - t0));
  sigset_t pending;
  sigpending(&pending);
  if (!sigismember(&pending, SIGUSR2)) ct_fail("the pending SIGUSR2 was lost");
  if (usr2) ct_fail("SIGUSR2 was delivered while blocked");
  sigprocmask(SIG_UNBLOCK, &block, NULL);
  if (!usr2) ct_fail("SIGUSR2 was not delivered when unblocked");
  ct_ok();
}
