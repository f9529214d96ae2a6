/* Container subject: a process tree (root, two children, a grandchild under each) must come
 * back with the same parent/child relations: each process checks getppid(), and parents reap
 * their own children.
 * Usage: ct_tree RESULT_FILE */
#define _GNU_SOURCE /* before any system header (ct_common.h needs close_range) */
#include <sys/wait.h>

#include "ct_common.h"

static volatile sig_atomic_t stop;

static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

/* Sleeps until SIGTERM, then checks its parent, reaps `child` (if any) and exits 0 when both
 * are as they were before the checkpoint. */
static void member(pid_t parent, pid_t child) {
  while (!stop) ct_sleep_ms(5);
  int bad = getppid() != parent;
  if (child > 0) {
    int ws = 0;
    kill(child, SIGTERM);
    bad |= waitpid(child, &ws, 0) != child || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0;
  }
  _exit(bad);
}

static pid_t spawn(int depth) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  pid_t grandchild = depth > 0 ? spawn(depth - 1) : 0;
  member(parent, grandchild);
  return 0;
}

int main(int argc, char** argv) {
  ct_init(argc, argv);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);  // inherited by the members
  pid_t kids[2] = {spawn(1), spawn(1)};
  ct_sleep_ms(50);
  ct_ready_and_wait();
  for (int i = 0; i < 2; ++i) {
    int ws = 0;
    kill(kids[i], SIGTERM);
    if (waitpid(kids[i], &ws, 0) != kids[i]) ct_fail("child %d is no longer ours", kids[i]);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) ct_fail("child %d reported 0x%x", kids[i], ws);
  }
  ct_ok();
}
