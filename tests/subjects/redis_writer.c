/* A verifying Redis client for the HA tests.
 *
 *   redis_writer write HOST PORT PREFIX
 *     SETs PREFIX<i> = i for i = 1, 2, ... and prints "i <ms since start>" for every write
 *     Redis acknowledged (+OK), flushing each line: the lines are the acknowledged writes. On a
 *     broken or silent connection (1 s) it reconnects and resends the unacknowledged write,
 *     forever; the test kills it.
 *   redis_writer verify HOST PORT PREFIX < acked-lines
 *     GETs PREFIX<i> for every acknowledged i (pipelined) and prints "missing i" for each one
 *     that is not there with value i, then "checked N missing M".
 *
 * Inline commands only (no RESP arrays): the keys and values have no spaces. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int dial(const char* host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  inet_pton(AF_INET, host, &a.sin_addr);
  struct timeval tv = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* One request, one reply line (without CRLF) into buf; -1 on error or 1 s of silence. */
static int call(int fd, const char* req, char* buf, size_t cap) {
  size_t len = strlen(req);
  if (write(fd, req, len) != (ssize_t)len) return -1;
  size_t got = 0;
  long deadline = now_ms() + 1000;
  while (got + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    long left = deadline - now_ms();
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) return -1;
    ssize_t n = read(fd, buf + got, cap - 1 - got);
    if (n <= 0) return -1;
    got += (size_t)n;
    buf[got] = 0;
    char* nl = strstr(buf, "\r\n");
    if (nl) {
      *nl = 0;
      /* A bulk reply ($N) has its payload on the next line. */
      if (buf[0] == '$' && atoi(buf + 1) >= 0) {
        char* payload = nl + 2;
        char* end = strstr(payload, "\r\n");
        if (!end) {
          *nl = '\r';
          continue;
        }
        *end = 0;
        memmove(buf, payload, strlen(payload) + 1);
      }
      return 0;
    }
  }
  return -1;
}

static int write_loop(const char* host, int port, const char* prefix) {
  long start = now_ms();
  int fd = -1;
  char req[256], reply[4096];
  for (long i = 1;;) {
    if (fd < 0) {
      fd = dial(host, port);
      if (fd < 0) {
        usleep(20000);
        continue;
      }
    }
    snprintf(req, sizeof req, "SET %s%ld %ld\r\n", prefix, i, i);
    if (call(fd, req, reply, sizeof reply) != 0) {
      close(fd);
      fd = -1;
      continue;
    }
    if (strcmp(reply, "+OK") == 0) {
      printf("%ld %ld\n", i, now_ms() - start);
      fflush(stdout);
      ++i;
    }
  }
  return 0;
}

/* Replies to GETs, pipelined: "$N\r\n<data>\r\n" or "$-1\r\n". Reads until `count` replies
 * are parsed into values[] (NULL for a nil reply). */
static int read_replies(int fd, long count, char** values) {
  static char buf[1 << 20];
  size_t have = 0, at = 0;
  long done = 0;
  while (done < count) {
    char* nl = memmem(buf + at, have - at, "\r\n", 2);
    if (nl && buf[at] == '$') {
      long n = atol(buf + at + 1);
      size_t header = (size_t)(nl - (buf + at)) + 2;
      if (n < 0) {
        values[done++] = NULL;
        at += header;
        continue;
      }
      if (have - at >= header + (size_t)n + 2) {
        values[done++] = strndup(buf + at + header, (size_t)n);
        at += header + (size_t)n + 2;
        continue;
      }
    } else if (nl) {
      return -1; /* an error reply */
    }
    memmove(buf, buf + at, have - at);
    have -= at;
    at = 0;
    struct pollfd p = {fd, POLLIN, 0};
    if (have == sizeof buf || poll(&p, 1, 30000) <= 0) return -1;
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r <= 0) return -1;
    have += (size_t)r;
  }
  return 0;
}

/* Checks in pipelined batches: behind an HA primary every reply waits for an epoch commit, so
 * one request at a time would take an epoch per key. */
static int verify(const char* host, int port, const char* prefix) {
  int fd = dial(host, port);
  if (fd < 0) {
    printf("cannot connect\n");
    return 2;
  }
  enum { kBatch = 2000 };
  long keys[kBatch], t, checked = 0, missing = 0;
  char* values[kBatch];
  char req[64];
  for (;;) {
    long n = 0;
    while (n < kBatch && scanf("%ld %ld", &keys[n], &t) == 2) ++n;
    if (n == 0) break;
    for (long i = 0; i < n; ++i) {
      int len = snprintf(req, sizeof req, "GET %s%ld\r\n", prefix, keys[i]);
      if (write(fd, req, (size_t)len) != len) {
        printf("write failed\n");
        return 2;
      }
    }
    if (read_replies(fd, n, values) != 0) {
      printf("reading replies failed\n");
      return 2;
    }
    for (long i = 0; i < n; ++i) {
      char want[32];
      snprintf(want, sizeof want, "%ld", keys[i]);
      ++checked;
      if (!values[i] || strcmp(values[i], want) != 0) {
        printf("missing %ld\n", keys[i]);
        ++missing;
      }
      free(values[i]);
    }
  }
  printf("checked %ld missing %ld\n", checked, missing);
  return missing == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: redis_writer write|verify HOST PORT PREFIX\n");
    return 2;
  }
  if (strcmp(argv[1], "write") == 0) return write_loop(argv[2], atoi(argv[3]), argv[4]);
  return verify(argv[2], atoi(argv[3]), argv[4]);
}
