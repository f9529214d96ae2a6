// The calls a recording from exec sends through the fast path once it has patched their glibc
// syscall sites (read, write, pread64, pwrite64 and the others of fast_path_abi.h), in the
// situations the fast path must get right. Prints a digest of every byte and count it read, so a
// replay that returns anything else prints something else.
//   byte_calls pipe N      a reader thread blocks on an empty pipe (the fast path cannot take
//                          that read) while the writer thread, which must get the turn, writes N
//                          messages of varying length into it (every third with writev)
//   byte_calls signals N   a 1 ms interval timer interrupts a loop of file reads and writes N
//                          times; its handler writes to a pipe through the same glibc write
//   byte_calls raw N       N rounds of the calls made through glibc and the same calls made with
//                          an inline `syscall` instruction, which no patched site sees
//   byte_calls calls N     N rounds of the other calls: writev, readv, sendmsg, recvmsg, stat,
//                          fstat, statx, lseek, getdents64, getrandom, poll and epoll_wait with
//                          a zero timeout, FIONREAD, F_GETFL, send and recv on a socket pair,
//                          the id calls; a second line digests
//                          what differs from run to run (ids, inode numbers, random bytes)
//   byte_calls waits N     a thread waits N times each in poll, epoll_wait and recv (no timeout)
//                          until the main thread, which must get the turn, writes
//   byte_calls streams N   N rounds of: a line to a dup of stdout, which is closed, and a line to
//                          a file opened on the same descriptor number: stdout gets N lines
//   byte_calls file N      N rounds of pwrite64, pread64, write and read on a temporary file,
//                          with reads longer than what is left and a write larger than the buffer
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

static uint64_t digest = 1469598103934665603ull;

static void mix_bytes(const void* p, size_t n) {
  const unsigned char* b = p;
  for (size_t i = 0; i < n; ++i) {
    digest ^= b[i];
    digest *= 1099511628211ull;
  }
}

static void mix(int64_t v) { mix_bytes(&v, sizeof v); }

// Joins `t` and says whether it failed.
static int join_failed(pthread_t t) {
  void* failed = NULL;
  pthread_join(t, &failed);
  return failed != NULL;
}

static int pipe_fds[2];
static long messages;

static void* writer(void* arg) {
  (void)arg;
  char msg[300];
  for (long i = 0; i < messages; ++i) {
    size_t len = 1 + (size_t)(i * 37 % 250);
    memset(msg, 'a' + (int)(i % 26), len);
    if (i % 3 == 0) {  // a header and a body, as servers send them
      struct iovec iov[2] = {{msg, len / 3}, {msg + len / 3, len - len / 3}};
      if (writev(pipe_fds[1], iov, 2) != (ssize_t)len) return (void*)1;
    } else if (write(pipe_fds[1], msg, len) != (ssize_t)len) {
      return (void*)1;
    }
    if (i % 64 == 0) usleep(200);  // the reader empties the pipe and blocks in read
  }
  close(pipe_fds[1]);
  return NULL;
}

static int pipe_mode(long n) {
  messages = n;
  if (pipe(pipe_fds) != 0) return 1;
  pthread_t w;
  pthread_create(&w, NULL, writer, NULL);
  char buf[512];
  long total = 0;
  ssize_t got;
  while ((got = read(pipe_fds[0], buf, sizeof buf)) > 0) {
    mix_bytes(buf, (size_t)got);
    total += got;
  }
  int failed = join_failed(w);
  printf("pipe: %ld bytes, digest %016llx%s\n", total, (unsigned long long)digest,
         failed ? " (writer failed)" : "");
  return failed;
}

static int sig_pipe[2];
static volatile long ticks;

static void on_alarm(int sig) {
  (void)sig;
  char c = 't';
  ticks = ticks + 1;
  (void)!write(sig_pipe[1], &c, 1);  // the same glibc write the loop uses
}

static int signals_mode(long n) {
  if (pipe2(sig_pipe, O_NONBLOCK) != 0) return 1;
  int in = open("/proc/self/exe", O_RDONLY), out = open("/dev/null", O_WRONLY);
  if (in < 0 || out < 0) return 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &it, NULL);
  char buf[64], drained[64];
  long calls = 0;
  while (ticks < n) {
    ssize_t got = pread(in, buf, sizeof buf, (calls * 64) % 4096);
    mix(got);
    if (got > 0) mix_bytes(buf, (size_t)got);
    mix(write(out, buf, sizeof buf));
    ssize_t d = read(sig_pipe[0], drained, sizeof drained);  // EAGAIN mostly
    if (d > 0) mix(calls);                                   // where the handler's bytes were seen
    ++calls;
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  // A tick may still land between the loop's last test and the timer's end (a recorder delivers
  // one it held there, at setitimer's exit): the loop saw n, which is what is printed.
  printf("signals: %ld ticks, digest %016llx\n", n, (unsigned long long)digest);
  return 0;
}

// A system call no libc site makes: glibc's syscall(2) is a site the recorder patches too.
static long raw_syscall(long nr, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                   : "rcx", "r11", "memory");
  return ret;
}

static int raw_mode(long n) {
  int in = open("/proc/self/exe", O_RDONLY), out = open("/dev/null", O_WRONLY);
  if (in < 0 || out < 0) return 1;
  char buf[128];
  for (long i = 0; i < n; ++i) {
    off_t at = (i * 128) % 8192;
    ssize_t a = pread(in, buf, sizeof buf, at);
    mix_bytes(buf, (size_t)(a > 0 ? a : 0));
    ssize_t b = raw_syscall(SYS_pread64, in, (long)buf, sizeof buf, at + 1);
    mix_bytes(buf, (size_t)(b > 0 ? b : 0));
    mix(write(out, buf, (size_t)(i % 100)));
    mix(raw_syscall(SYS_write, out, (long)buf, (long)(i % 50), 0));
  }
  printf("raw: digest %016llx\n", (unsigned long long)digest);
  return 0;
}

static int file_mode(long n) {
  char path[] = "/tmp/relive-byte-calls-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  unlink(path);
  static char big[300 * 1024];  // over the fast path's largest entry: traced
  for (size_t i = 0; i < sizeof big; ++i) big[i] = (char)(i * 7);
  char buf[4096];
  for (long i = 0; i < n; ++i) {
    snprintf(buf, sizeof buf, "round %ld\n", i);
    mix(pwrite(fd, buf, strlen(buf), i * 16));
    mix(pread(fd, buf, sizeof buf, i * 8));  // longer than what is there: short
    mix_bytes(buf, 16);
    if (i % 100 == 0) {
      lseek(fd, 0, SEEK_END);
      mix(write(fd, big, sizeof big));
      lseek(fd, 0, SEEK_SET);
      mix(read(fd, big, sizeof big));
      mix_bytes(big, 64);
    }
  }
  printf("file: digest %016llx\n", (unsigned long long)digest);
  close(fd);
  return 0;
}

static uint64_t nd_digest = 1469598103934665603ull;  // what differs from run to run

static void mix_nd(const void* p, size_t n) {
  uint64_t keep = digest;
  digest = nd_digest;
  mix_bytes(p, n);
  nd_digest = digest;
  digest = keep;
}

static int calls_mode(long n) {
  char dir[] = "/tmp/relive-calls-XXXXXX";
  if (mkdtemp(dir) == NULL) return 1;
  char path[64];
  snprintf(path, sizeof path, "%s/file", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  int sv[2], p[2];
  if (fd < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(p) != 0) return 1;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0) return 1;
  if (write(fd, "0123456789abcdef", 16) != 16) return 1;
  char buf[256];
  for (long i = 0; i < n; ++i) {
    struct stat st;
    mix(fstat(fd, &st));
    mix(st.st_size), mix(st.st_mode);
    mix_nd(&st.st_ino, sizeof st.st_ino);
    mix(stat(path, &st));
    mix(st.st_size);
    mix(stat("/nonexistent/relive", &st));
    struct statx sx;
    mix(statx(AT_FDCWD, path, 0, STATX_SIZE, &sx));
    mix((int64_t)sx.stx_size);
    mix(lseek(fd, i % 16, SEEK_SET));
    mix(read(fd, buf, 4));
    mix_bytes(buf, 4);
    if (i % 10 == 0) {
      int d = open(dir, O_RDONLY | O_DIRECTORY);
      long got = syscall(SYS_getdents64, d, buf, sizeof buf);  // glibc's syscall(2) site
      mix(got > 0);
      close(d);
    }
    unsigned char r[16];
    mix(getrandom(r, sizeof r, 0));
    mix_nd(r, sizeof r);
    struct iovec two[2] = {{(void*)"x", 1}, {(void*)"yz", 2}};
    mix(writev(p[1], two, 2));
    struct pollfd pfd = {p[0], POLLIN, 0};
    mix(poll(&pfd, 1, 0));
    mix(pfd.revents);
    struct epoll_event out[4];
    int ready = epoll_wait(ep, out, 4, 0);
    mix(ready);
    if (ready > 0) mix((int64_t)out[0].data.u64);
    int avail = 0;
    mix(ioctl(p[0], FIONREAD, &avail));
    mix(avail);
    mix(read(p[0], buf, sizeof buf));
    mix(writev(p[1], two, 2));
    char head[2], tail[8];
    struct iovec in[2] = {{head, sizeof head}, {tail, sizeof tail}};
    mix(readv(p[0], in, 2));  // "xyz" scattered: "xy" and "z"
    mix_bytes(head, sizeof head), mix_bytes(tail, 1);
    mix(lseek(fd, 3, SEEK_SET));
    mix(readv(fd, in, 2));  // 10 bytes of the file
    mix_bytes(head, sizeof head), mix_bytes(tail, sizeof tail);
    mix(poll(&pfd, 1, 0));  // nothing left: 0 at once
    mix(fcntl(fd, F_GETFL) & O_ACCMODE);
    int again = open(path, O_RDONLY);
    mix(again >= 0);
    mix(read(again, buf, 3));
    mix_bytes(buf, 3);
    mix(close(again));
    mix(close(-1));  // EBADF
    mix(send(sv[0], "ping", 4, 0));
    mix(recv(sv[1], buf, sizeof buf, 0));
    mix_bytes(buf, 4);
    mix(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));  // nothing: EAGAIN, the program's answer
    struct iovec parts[2] = {{(void*)"ms", 2}, {(void*)"g", 1}};
    struct msghdr sent = {.msg_iov = parts, .msg_iovlen = 2};
    mix(sendmsg(sv[0], &sent, 0));
    char m1[2], m2[8];
    struct iovec into[2] = {{m1, sizeof m1}, {m2, sizeof m2}};
    struct msghdr got = {.msg_iov = into, .msg_iovlen = 2};
    mix(recvmsg(sv[1], &got, 0));  // "msg" scattered: "ms" and "g"
    mix_bytes(m1, sizeof m1), mix_bytes(m2, 1), mix(got.msg_flags);
    pid_t ids[3] = {getpid(), getppid(), (pid_t)syscall(SYS_gettid)};
    mix_nd(ids, sizeof ids);
    uid_t uids[4] = {getuid(), geteuid(), getgid(), getegid()};
    mix_bytes(uids, sizeof uids);
  }
  unlink(path);
  rmdir(dir);
  printf("calls: digest %016llx\n", (unsigned long long)digest);
  printf("varies: %016llx\n", (unsigned long long)nd_digest);
  return 0;
}

static int wait_pipe[2], wait_epoll_pipe[2], wait_sock[2];

static void* waiter(void* arg) {
  long n = (long)arg;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, wait_epoll_pipe[0], &ev) != 0) return (void*)1;
  char c;
  for (long i = 0; i < n; ++i) {
    struct pollfd pfd = {wait_pipe[0], POLLIN, 0};
    if (poll(&pfd, 1, -1) != 1 || read(wait_pipe[0], &c, 1) != 1) return (void*)2;
    mix(c);
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, -1) != 1 || read(wait_epoll_pipe[0], &c, 1) != 1) return (void*)3;
    mix(c), mix((int64_t)out.data.u64);
    if (recv(wait_sock[1], &c, 1, 0) != 1) return (void*)4;
    mix(c);
  }
  close(ep);
  return NULL;
}

static int waits_mode(long n) {
  if (pipe(wait_pipe) != 0 || pipe(wait_epoll_pipe) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM, 0, wait_sock) != 0)
    return 1;
  pthread_t w;
  pthread_create(&w, NULL, waiter, (void*)n);
  for (long i = 0; i < n; ++i) {
    char c = (char)('a' + i % 26);
    usleep(100);  // the waiter is (mostly) waiting when each byte comes
    if (write(wait_pipe[1], &c, 1) != 1) return 1;
    usleep(100);
    if (write(wait_epoll_pipe[1], &c, 1) != 1) return 1;
    usleep(100);
    if (send(wait_sock[0], &c, 1, 0) != 1) return 1;
  }
  int failed = join_failed(w);
  printf("waits: %ld rounds, digest %016llx%s\n", n, (unsigned long long)digest,
         failed ? " (waiter failed)" : "");
  return failed;
}

static int streams_mode(long n) {
  char path[] = "/tmp/relive-streams-XXXXXX";
  int tmp = mkstemp(path);
  if (tmp < 0) return 1;
  close(tmp);
  for (long i = 0; i < n; ++i) {
    int out = dup(1);  // the same file as stdout
    char line[64];
    int len = snprintf(line, sizeof line, "to stdout %ld\n", i);
    if (out < 0 || write(out, line, (size_t)len) != len || close(out) != 0) return 1;
    int file = open(path, O_WRONLY | O_TRUNC);  // the same descriptor number, another file
    len = snprintf(line, sizeof line, "to the file %ld\n", i);
    if (file != out || write(file, line, (size_t)len) != len || close(file) != 0) return 1;
  }
  unlink(path);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  long n = argc > 2 ? atol(argv[2]) : 1000;
  if (strcmp(argv[1], "pipe") == 0) return pipe_mode(n);
  if (strcmp(argv[1], "signals") == 0) return signals_mode(n);
  if (strcmp(argv[1], "raw") == 0) return raw_mode(n);
  if (strcmp(argv[1], "file") == 0) return file_mode(n);
  if (strcmp(argv[1], "calls") == 0) return calls_mode(n);
  if (strcmp(argv[1], "waits") == 0) return waits_mode(n);
  if (strcmp(argv[1], "streams") == 0) return streams_mode(n);
  return 2;
}
