// Throughput of ShmRing across fork(): the parent pushes fixed-size records, a forked child pops
// them (touching every byte, as a log writer would when compressing). Also measures the
// push_flush() round trip. Usage: shm_ring_bench [seconds_per_case]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "transport/shm_ring.h"

namespace {

using relive::transport::ShmRing;
using Clock = std::chrono::steady_clock;

// Consumer body: pops until close, folding every byte so the copy cannot be optimized away.
[[noreturn]] void consume(ShmRing& ring) {
  uint64_t sum = 0;
  ShmRing::Record rec;
  while (ring.pop_into(rec)) {
    for (unsigned char c : rec.data) sum += c;
    if (rec.kind == ShmRing::Record::kFlush) ring.ack_flush();
  }
  ::_exit(sum == 1 ? 3 : 0);  // keeps `sum` live
}

pid_t start_consumer(ShmRing& ring) {
  pid_t pid = ::fork();
  if (pid == 0) consume(ring);
  if (pid < 0 || !ring.set_consumer_pid(pid).ok()) {
    std::perror("fork consumer");
    std::exit(1);
  }
  return pid;
}

bool wait_ok(pid_t pid) {
  int ws = 0;
  return ::waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

ShmRing make_ring() {
  auto ring = ShmRing::create(ShmRing::kDefaultCapacity);
  if (!ring.ok()) {
    std::fprintf(stderr, "%s\n", ring.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(ring).value();
}

// Pushes `size`-byte records for about `seconds`, then closes and waits for the consumer to drain;
// the rate counts the drain, so it is end-to-end.
void throughput(size_t size, double seconds) {
  ShmRing ring = make_ring();
  pid_t child = start_consumer(ring);
  std::string rec(size, 'r');
  uint64_t n = 0;
  auto t0 = Clock::now();
  auto stop = t0 + std::chrono::duration<double>(seconds);
  while (true) {
    for (int k = 0; k < 1024; ++k, ++n) {
      if (!ring.push(rec).ok()) std::exit(2);
    }
    if (Clock::now() >= stop) break;
  }
  ring.close();
  bool ok = wait_ok(child);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("%5zu-byte records: %12.0f records/s  %9.1f MB/s  (%llu records, %.2f s)%s\n", size,
              n / secs, n * size / secs / 1e6, static_cast<unsigned long long>(n), secs,
              ok ? "" : "  CONSUMER FAILED");
}

void flush_latency(int rounds) {
  ShmRing ring = make_ring();
  pid_t child = start_consumer(ring);
  auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    if (!ring.push("x").ok() || !ring.push_flush().ok()) std::exit(2);
  }
  double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / rounds;
  ring.close();
  bool ok = wait_ok(child);
  std::printf("push + push_flush round trip: %.1f us%s\n", us, ok ? "" : "  CONSUMER FAILED");
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  throughput(64, seconds);
  throughput(4096, seconds);
  flush_latency(10000);
  return 0;
}
