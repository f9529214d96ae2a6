// read, write, pread64 and pwrite64 made through glibc, which a recording from exec sends through
// the fast path once it has patched their syscall sites, in the situations the fast path must get
// right. Prints a digest of every byte and count it read, so a replay that returns anything else
// prints something else.
//   byte_calls pipe N      a reader thread blocks on an empty pipe (the fast path cannot take
//                          that read) while the writer thread, which must get the turn, writes N
//                          messages of varying length into it
//   byte_calls signals N   a 1 ms interval timer interrupts a loop of file reads and writes N
//                          times; its handler writes to a pipe through the same glibc write
//   byte_calls raw N       N rounds of the calls made through glibc and the same calls made with
//                          syscall(2), which no patched site sees
//   byte_calls file N      N rounds of pwrite64, pread64, write and read on a temporary file,
//                          with reads longer than what is left and a write larger than the buffer
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
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

static int pipe_fds[2];
static long messages;

static void* writer(void* arg) {
  (void)arg;
  char msg[300];
  for (long i = 0; i < messages; ++i) {
    size_t len = 1 + (size_t)(i * 37 % 250);
    memset(msg, 'a' + (int)(i % 26), len);
    if (write(pipe_fds[1], msg, len) != (ssize_t)len) return (void*)1;
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
  void* failed = NULL;
  pthread_join(w, &failed);
  printf("pipe: %ld bytes, digest %016llx%s\n", total, (unsigned long long)digest,
         failed ? " (writer failed)" : "");
  return failed != NULL;
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
  printf("signals: %ld ticks, digest %016llx\n", (long)ticks, (unsigned long long)digest);
  return 0;
}

static int raw_mode(long n) {
  int in = open("/proc/self/exe", O_RDONLY), out = open("/dev/null", O_WRONLY);
  if (in < 0 || out < 0) return 1;
  char buf[128];
  for (long i = 0; i < n; ++i) {
    off_t at = (i * 128) % 8192;
    ssize_t a = pread(in, buf, sizeof buf, at);
    mix_bytes(buf, (size_t)(a > 0 ? a : 0));
    ssize_t b = syscall(SYS_pread64, in, buf, sizeof buf, at + 1);
    mix_bytes(buf, (size_t)(b > 0 ? b : 0));
    mix(write(out, buf, (size_t)(i % 100)));
    mix(syscall(SYS_write, out, buf, (size_t)(i % 50)));
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

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  long n = argc > 2 ? atol(argv[2]) : 1000;
  if (strcmp(argv[1], "pipe") == 0) return pipe_mode(n);
  if (strcmp(argv[1], "signals") == 0) return signals_mode(n);
  if (strcmp(argv[1], "raw") == 0) return raw_mode(n);
  if (strcmp(argv[1], "file") == 0) return file_mode(n);
  return 2;
}
