// Signals at every kind of boundary: raise() (delivered at the kill syscall's exit), an interval
// timer interrupting nanosleep (EINTR / restart) and arriving in the middle of compute loops
// (held until the next syscall), SIGCHLD-free. Prints the order in which handlers ran, which
// replay must reproduce exactly.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms = 0, usr1 = 0;
static char trail[512];
static volatile int trail_len = 0;

static void note(char c) {
  if (trail_len < (int)sizeof trail - 1) trail[trail_len++] = c;
}
static void on_alarm(int s) {
  ++alarms;
  note('A');
}
static void on_usr1(int s) {
  ++usr1;
  note('U');
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);

  raise(SIGUSR1);
  note(usr1 == 1 ? 'r' : 'x');  // the handler must have run before raise() returned

  struct itimerval it = {{0, 3000}, {0, 3000}};
  setitimer(ITIMER_REAL, &it, NULL);
  int eintr = 0;
  for (int i = 0; i < 20; ++i) {
    struct timespec ts = {0, 2000000};
    if (nanosleep(&ts, NULL) != 0 && errno == EINTR) ++eintr, note('i');
    volatile unsigned long x = 0;
    for (unsigned long k = 0; k < 3000000; ++k) x += k;  // timer fires mid-computation too
    note('.');
    if (i % 5 == 0) kill(getpid(), SIGUSR1);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  trail[trail_len] = 0;
  printf("alarms=%d usr1=%d eintr=%d\n%s\n", (int)alarms, (int)usr1, eintr, trail);
  return 0;
}
