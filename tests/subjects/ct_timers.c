/* Container subject: timers must keep firing after the restore: a periodic setitimer
 * (SIGALRM, counted) and a one-shot timerfd armed 1.5 s ahead before the checkpoint.
 *
 * Why the timerfd is one-shot: CRIU 4.1.1 dumps a timerfd's remaining time from
 * /proc/PID/fdinfo, which says it_value (0, 0) for a periodic timerfd that has expired and not
 * been read yet (the kernel re-arms it only on read). CRIU then restores it disarmed (ticks
 * kept, never firing again). A tree frozen for longer than the period always hits this, so a
 * periodic timerfd would test CRIU's bug, not relive.
 * Usage: ct_timers RESULT_FILE */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <poll.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/timerfd.h>

#include "ct_common.h"

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
  (void)sig;
  ++alarms;
}

static void check_timerfd(int tfd) {
  struct pollfd p = {.fd = tfd, .events = POLLIN};
  int n;
  do {
    n = poll(&p, 1, 5000);
  } while (n < 0 && errno == EINTR);
  if (n != 1) ct_fail("the timerfd did not fire within 5 s of the restore");
  uint64_t ticks = 0;
  if (read(tfd, &ticks, sizeof ticks) != sizeof ticks || ticks != 1) {
    ct_fail("timerfd read %llu ticks", (unsigned long long)ticks);
  }
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 10000}, {0, 10000}};
  if (setitimer(ITIMER_REAL, &it, NULL) != 0) ct_fail("setitimer: %s", strerror(errno));
  int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec ts = {{0, 0}, {1, 500000000}};
  if (tfd < 0 || timerfd_settime(tfd, 0, &ts, NULL) != 0) ct_fail("timerfd: %s", strerror(errno));
  ct_sleep_ms(50);
  if (alarms == 0) ct_fail("setitimer never fired before the checkpoint");
  ct_ready_and_wait();
  sig_atomic_t before = alarms;
  ct_sleep_ms(300);
  if (alarms - before < 5) ct_fail("setitimer fired %d times in 300 ms", (int)(alarms - before));
  check_timerfd(tfd);
  ct_ok();
}
