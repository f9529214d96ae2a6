// The bare cost of a traced system call, without relive: a tracer and a child whose seccomp
// filter traces getppid, two ptrace stops per call (the seccomp stop, then the syscall-exit
// stop), as relive's recorder takes them. `ptrace_stop one N` keeps tracer and child on one CPU,
// `ptrace_stop two N` puts them on two different CPUs. A third argument `tsc` disables the
// child's rdtsc (PR_SET_TSC, as relive does to its tracees), `tsc-both` the tracer's as well.
// Prints microseconds per call (median of five runs of N calls).
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void bind_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity"), exit(2);
}

static double now_us(void) {
  struct timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);  // not the vDSO: rdtsc may trap here
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  int same = argc > 1 && strcmp(argv[1], "one") == 0;
  int child_tsc = argc > 3 && strncmp(argv[3], "tsc", 3) == 0;
  int tracer_tsc = argc > 3 && strcmp(argv[3], "tsc-both") == 0;
  long n = argc > 2 ? atol(argv[2]) : 2000;
  int pipefd[2];
  if (pipe(pipefd) != 0) return 2;
  bind_to(0);
  pid_t pid = fork();
  if (pid == 0) {
    bind_to(same ? 0 : 1);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (child_tsc) prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0);
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
      _exit(3);
    double runs[5];
    for (int r = 0; r < 5; ++r) {
      double t0 = now_us();
      for (long i = 0; i < n; ++i) syscall(SYS_getppid);
      runs[r] = (now_us() - t0) / n;
    }
    qsort(runs, 5, sizeof runs[0], cmp);
    (void)!write(pipefd[1], &runs[2], sizeof runs[2]);
    _exit(0);
  }
  if (tracer_tsc) prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0);  // no rdtsc here from now on
  int status;
  waitpid(pid, &status, 0);
  ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL);
  ptrace(PTRACE_CONT, pid, 0, 0);
  for (;;) {
    if (waitpid(pid, &status, 0) != pid || WIFEXITED(status) || WIFSIGNALED(status)) break;
    if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8)))
      ptrace(PTRACE_SYSCALL, pid, 0, 0);  // on to the exit stop
    else
      ptrace(PTRACE_CONT, pid, 0, 0);
  }
  double us = 0;
  if (read(pipefd[0], &us, sizeof us) != sizeof us) return 1;
  printf("%.1f\n", us);
  return 0;
}
