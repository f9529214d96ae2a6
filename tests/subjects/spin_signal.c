// A thread that waits for its own signal handler by spinning on a flag, with no syscall while it
// waits: SIGALRM from an interval timer sets the flag. Usage: spin_signal ROUNDS. Prints how
// many alarms it saw; exits 0 when it saw them all.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

static volatile sig_atomic_t fired;

static void on_alarm(int sig) {
  (void)sig;
  fired = 1;
}

int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  int seen = 0;
  for (int r = 0; r < rounds; ++r) {
    fired = 0;
    struct itimerval t = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &t, NULL);
    while (!fired) __builtin_ia32_pause();
    ++seen;
  }
  printf("alarms %d\n", seen);
  return seen == rounds ? 0 : 1;
}
