/* Two processes whose fd 1 are different files: the child's fd 1 is a pipe, the parent's is the
 * recording's stdout. The child writes to its fd 1, then tells the parent (over a second pipe)
 * to write to its own fd 1; no descriptor is opened, closed or duplicated between the two writes.
 * A recorder that decided which writes are the recorded stdout by descriptor number alone, not
 * per process, took the parent's line for pipe bytes and the replay lost it.
 * Prints "parent line" then what the child sent through the pipe, on stdout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(const char* what) {
  fprintf(stderr, "fd_streams: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void write_all(int fd, const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w <= 0) fail("write");
    s += w;
    n -= (size_t)w;
  }
}

int main(void) {
  int data[2], go[2];
  if (pipe(data) != 0 || pipe(go) != 0) fail("pipe");
  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    if (dup2(data[1], 1) != 1) fail("dup2");
    write_all(1, "child line\n"); /* to the pipe */
    write_all(go[1], "g");        /* then let the parent write */
    _exit(0);
  }
  char c;
  if (read(go[0], &c, 1) != 1) fail("read go");
  write_all(1, "parent line\n"); /* to the recording's stdout */
  char buf[64];
  ssize_t n = read(data[0], buf, sizeof buf - 1);
  if (n <= 0) fail("read data");
  buf[n] = 0;
  write_all(1, buf);
  int status;
  if (waitpid(child, &status, 0) != child) fail("waitpid");
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
