// An HA test workload whose kernel state changes under protection, and which checks after a
// failover that what it knows of itself (memory) and what the kernel says agree.
//
//   ha_stateful serve PORT   serves "add N" (adds to a total, answers "ok TOTAL") and "check"
//                            (answers "total T steps S worker W phase P ok", or "BAD what"),
//                            one request per connection. Between requests it computes (an array
//                            whose sum it keeps, a floating-point value held in a register and
//                            mirrored in memory), and every 200 ms moves to the next phase of a
//                            cycle that opens and closes a file, starts and joins a thread, maps
//                            and unmaps memory, blocks and unblocks SIGUSR2, appends to a log
//                            file in its working directory and marks the whole mapped region
//                            MADV_DONTFORK and back (no change to /proc/PID/maps). "quiet" stops
//                            the cycle but for the log file's appends (answers "ok").
//   ha_stateful ask HOST PORT REQUEST   prints the answer; exit 1 when there is none.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { kCells = 1 << 16, kMapBytes = 1 << 20 };
static uint64_t cells[kCells];
static uint64_t cells_sum;
static volatile double shadow;  // the register value, as last stored
static uint64_t total, steps;
static volatile uint64_t worker_count;
static volatile int extra_stop;
static uint64_t extra_count;
static pthread_t extra;
static int extra_running;
static int open_fd = -1;
static unsigned char* region;
static unsigned char region_stamp;
static int region_dontfork;
static int usr2_blocked;
static int log_fd = -1;
static uint64_t logged;
static char bad[128];
static int quiet;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void* worker(void* arg) {
  (void)arg;
  for (;;) {
    worker_count++;
    usleep(1000);
  }
  return NULL;
}

static void* extra_fn(void* arg) {
  (void)arg;
  while (!extra_stop) {
    extra_count++;
    usleep(500);
  }
  return NULL;
}

static void fail(const char* what) {
  if (bad[0] == '\0') snprintf(bad, sizeof bad, "%s", what);
}

// Whether smaps lists `flag` among the VmFlags of the mapping that holds `region`.
static int region_has_flag(const char* flag) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[512];
  int in_region = 0, found = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long start, end;
    if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      in_region = start <= (unsigned long)region && (unsigned long)region < end;
    } else if (in_region && strncmp(line, "VmFlags:", 8) == 0) {
      char padded[512];
      snprintf(padded, sizeof padded, "%s ", line + 8);
      char want[8];
      snprintf(want, sizeof want, " %s ", flag);
      found = strstr(padded, want) != NULL;
      break;
    }
  }
  fclose(f);
  return found;
}

// What the process knows of itself against what the kernel says.
static void self_check(void) {
  uint64_t sum = 0;
  for (int i = 0; i < kCells; ++i) sum += cells[i];
  if (sum != cells_sum) fail("memory: the cells do not add up");
  sigset_t cur;
  pthread_sigmask(SIG_SETMASK, NULL, &cur);
  if (sigismember(&cur, SIGUSR2) != usr2_blocked) fail("signal mask");
  if (log_fd >= 0) {
    struct stat st;
    if (lseek(log_fd, 0, SEEK_CUR) != (off_t)logged) fail("log file offset");
    if (fstat(log_fd, &st) != 0 || st.st_size != (off_t)logged) fail("log file size");
  }
  if (region != NULL) {
    for (int i = 0; i < kMapBytes; i += 4096)
      if (region[i] != region_stamp) fail("mapped region");
    if (region_has_flag("dc") != region_dontfork) fail("mapped region's MADV_DONTFORK");
  }
  if (open_fd >= 0 && fcntl(open_fd, F_GETFD) < 0) fail("open file");
}

static void next_phase(unsigned phase) {
  switch (phase % 6) {
    case 0:
      if (open_fd >= 0) {
        close(open_fd);
        open_fd = -1;
      } else {
        open_fd = open("held.txt", O_RDWR | O_CREAT, 0600);
      }
      break;
    case 1:
      if (extra_running) {
        extra_stop = 1;
        pthread_join(extra, NULL);
        extra_running = 0;
      } else {
        extra_stop = 0;
        extra_running = pthread_create(&extra, NULL, extra_fn, NULL) == 0;
      }
      break;
    case 2:
      if (region != NULL) {
        munmap(region, kMapBytes);
        region = NULL;
      } else {
        region = mmap(NULL, kMapBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) {
          region = NULL;
          break;
        }
        region_stamp = (unsigned char)(phase | 1);
        region_dontfork = 0;
        for (int i = 0; i < kMapBytes; i += 4096) region[i] = region_stamp;
      }
      break;
    case 3: {
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGUSR2);
      pthread_sigmask(usr2_blocked ? SIG_UNBLOCK : SIG_BLOCK, &s, NULL);
      usr2_blocked = !usr2_blocked;
      break;
    }
    case 4: {
      char line[64];
      int n =
          snprintf(line, sizeof line, "phase %u total %llu\n", phase, (unsigned long long)total);
      if (write(log_fd, line, (size_t)n) == n) logged += (uint64_t)n;
      break;
    }
    case 5:
      if (region != NULL &&
          madvise(region, kMapBytes, region_dontfork ? MADV_DOFORK : MADV_DONTFORK) == 0)
        region_dontfork = !region_dontfork;
      break;
  }
}

static void answer(int c) {
  char req[128] = {0}, out[256];
  ssize_t n = read(c, req, sizeof req - 1);
  if (n <= 0) return;
  if (strncmp(req, "quiet", 5) == 0) {
    quiet = 1;
    snprintf(out, sizeof out, "ok\n");
  } else if (strncmp(req, "add ", 4) == 0) {
    total += strtoull(req + 4, NULL, 10);
    snprintf(out, sizeof out, "ok %llu\n", (unsigned long long)total);
  } else {
    self_check();
    if (bad[0] != '\0') {
      snprintf(out, sizeof out, "BAD %s\n", bad);
    } else {
      snprintf(out, sizeof out, "total %llu steps %llu worker %llu phase ok\n",
               (unsigned long long)total, (unsigned long long)steps,
               (unsigned long long)worker_count);
    }
  }
  (void)!write(c, out, strlen(out));
}

static int serve(int port) {
  log_fd = open("log.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (log_fd < 0 || bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 64) != 0) {
    perror("serve");
    return 1;
  }
  pthread_t w;
  pthread_create(&w, NULL, worker, NULL);
  double x = 1.0, next = now_s() + 0.2;
  unsigned phase = 0;
  for (;;) {
    // Compute for a while: the floating-point value lives in a register across iterations.
    for (int k = 0; k < 20000; ++k) {
      if (x != shadow && steps > 0) fail("floating-point registers");
      x = x * 1.0000001 + 1.0;
      if (x > 1e12) x = 1.0;
      shadow = x;
      uint64_t i = (steps * 2654435761u) % kCells, v = steps ^ (steps >> 3);
      cells_sum += v - cells[i];
      cells[i] = v;
      ++steps;
    }
    if (now_s() >= next) {
      if (quiet) phase += (9 - phase % 5) % 5;  // on to the next log-file phase
      next_phase(phase++);
      next = now_s() + 0.2;
    }
    struct pollfd p = {s, POLLIN, 0};
    if (poll(&p, 1, 1) == 1) {
      int c = accept(s, NULL, NULL);
      if (c >= 0) {
        answer(c);
        close(c);
      }
    }
  }
}

static int ask(const char* host, int port, const char* request) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  struct timeval tv = {10, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) return 1;
  if (write(s, request, strlen(request)) < 0) return 1;
  char out[256];
  ssize_t n = read(s, out, sizeof out - 1);
  if (n <= 0) return 1;
  out[n] = '\0';
  fputs(out, stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
  if (argc == 5 && strcmp(argv[1], "ask") == 0) return ask(argv[2], atoi(argv[3]), argv[4]);
  fprintf(stderr, "usage: ha_stateful serve PORT | ask HOST PORT REQUEST\n");
  return 2;
}
