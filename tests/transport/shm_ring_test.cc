#include "transport/shm_ring.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/scoped_fd.h"

namespace relive::transport {
namespace {

using Record = ShmRing::Record;
using Clock = std::chrono::steady_clock;

// Runs `body` in a forked child whose exit code is body's return value. The child never returns
// into gtest.
pid_t fork_child(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  return pid;
}

int wait_exit_code(pid_t pid) {
  int ws = 0;
  if (::waitpid(pid, &ws, 0) != pid) return -1;
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

// A record whose length and bytes both depend on `i`, so reordering or corruption shows.
std::string make_record(uint64_t i, size_t len) {
  std::string s(len, '\0');
  for (size_t k = 0; k < len; ++k) s[k] = static_cast<char>((i * 131 + k * 7) & 0xff);
  return s;
}

uint64_t mix(uint64_t h, std::string_view rec) { return (h ^ hash64(rec)) * 0x100000001b3ull; }

ShmRing make_ring(size_t cap) {
  auto ring = ShmRing::create(cap);
  EXPECT_TRUE(ring.ok()) << ring.status().to_string();
  return std::move(ring).value();
}

TEST(ShmRing, CreateRejectsBadCapacity) {
  EXPECT_EQ(ShmRing::create(8).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ShmRing::create(size_t{2} << 30).status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(ShmRing::create(64).ok());
}

TEST(ShmRing, PreservesOrderAndContentAcrossWrapAround) {
  ShmRing ring = make_ring(256);
  uint64_t pushed = 0, popped = 0;
  for (int round = 0; round < 500; ++round) {
    // A few records per round, odd sizes, so headers and payloads straddle the end of the ring.
    for (int k = 0; k < 3; ++k, ++pushed)
      ASSERT_TRUE(ring.push(make_record(pushed, pushed % 61)).ok());
    for (int k = 0; k < 3; ++k, ++popped) {
      auto rec = ring.pop();
      ASSERT_TRUE(rec.has_value());
      EXPECT_EQ(rec->kind, Record::kData);
      ASSERT_EQ(rec->data, make_record(popped, popped % 61)) << "record " << popped;
    }
  }
}

TEST(ShmRing, QueuedBytesSayHowFarTheProducerIsAhead) {
  ShmRing ring = make_ring(4096);
  EXPECT_EQ(ring.queued_bytes(), 0u);
  ASSERT_TRUE(ring.push(std::string(100, 'a')).ok());
  size_t one = ring.queued_bytes();
  EXPECT_GE(one, 100u);  // the record and its framing
  ASSERT_TRUE(ring.push(std::string(100, 'b')).ok());
  EXPECT_EQ(ring.queued_bytes(), 2 * one);
  ASSERT_TRUE(ring.pop().has_value());
  EXPECT_EQ(ring.queued_bytes(), one);
  ASSERT_TRUE(ring.pop().has_value());
  EXPECT_EQ(ring.queued_bytes(), 0u);
}

TEST(ShmRing, CarriesEveryRecordSizeUpToHalfTheCapacity) {
  ShmRing ring = make_ring(1024);
  for (size_t len = 0; len <= ring.max_record_size(); ++len) {
    ASSERT_TRUE(ring.push(make_record(len, len)).ok()) << len;
    auto rec = ring.pop();
    ASSERT_TRUE(rec.has_value());
    ASSERT_EQ(rec->data, make_record(len, len)) << len;
  }
}

TEST(ShmRing, RejectsOversizedRecord) {
  ShmRing ring = make_ring(1024);
  Status st = ring.push(std::string(513, 'x'));
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("513"), std::string::npos) << st.message();
  EXPECT_TRUE(ring.push(std::string(512, 'x')).ok());
}

TEST(ShmRing, CloseDrainsQueuedRecordsThenEnds) {
  ShmRing ring = make_ring(4096);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ring.push(make_record(i, 10)).ok());
  ring.close();
  EXPECT_EQ(ring.push("late").code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ring.push_flush().code(), Status::Code::kInvalidArgument);
  for (int i = 0; i < 3; ++i) {
    auto rec = ring.pop();
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->data, make_record(i, 10));
  }
  EXPECT_FALSE(ring.pop().has_value());
  EXPECT_FALSE(ring.pop().has_value());
  EXPECT_FALSE(ring.producer_lost());
}

TEST(ShmRing, MillionRecordsAcrossForkKeepChecksum) {
  constexpr uint64_t kCount = 1'000'000;
  ShmRing ring = make_ring(1 << 20);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ScopedFd rd(fds[0]), wr(fds[1]);
  pid_t child = fork_child([&] {
    uint64_t n = 0, h = 0;
    while (auto rec = ring.pop()) {
      if (rec->kind != Record::kData) return 3;
      h = mix(h, rec->data);
      ++n;
    }
    uint64_t out[2] = {n, h};
    return write_all(wr.get(), {reinterpret_cast<char*>(out), sizeof out}).ok() ? 0 : 4;
  });
  ASSERT_GT(child, 0);
  ASSERT_TRUE(ring.set_consumer_pid(child).ok());
  uint64_t h = 0;
  for (uint64_t i = 0; i < kCount; ++i) {
    std::string rec = make_record(i, i % 97);
    h = mix(h, rec);
    ASSERT_TRUE(ring.push(rec).ok()) << i;
  }
  ring.close();
  uint64_t got[2] = {0, 0};
  ASSERT_TRUE(read_exact(rd.get(), got, sizeof got).ok());
  EXPECT_EQ(got[0], kCount);
  EXPECT_EQ(got[1], h);
  EXPECT_EQ(wait_exit_code(child), 0);
}

TEST(ShmRing, PushFlushReturnsOnlyAfterTheConsumerAcknowledged) {
  ShmRing ring = make_ring(1 << 16);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ScopedFd rd(fds[0]), wr(fds[1]);
  pid_t child = fork_child([&] {
    uint64_t seen = 0;
    while (auto rec = ring.pop()) {
      if (rec->kind == Record::kData) {
        ++seen;
        continue;
      }
      // What the consumer saw goes into the pipe before the ack: once push_flush() returns,
      // it must be there already.
      if (!write_all(wr.get(), {reinterpret_cast<char*>(&seen), sizeof seen}).ok()) return 4;
      ring.ack_flush();
    }
    return 0;
  });
  ASSERT_TRUE(ring.set_consumer_pid(child).ok());
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(ring.push(make_record(i, 40)).ok());
  ASSERT_TRUE(ring.push_flush().ok());
  pollfd ready{rd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&ready, 1, 0), 1) << "push_flush returned before the consumer acknowledged";
  uint64_t seen = 0;
  ASSERT_TRUE(read_exact(rd.get(), &seen, sizeof seen).ok());
  EXPECT_EQ(seen, 5000u);  // everything before the marker was handled before the ack
  ASSERT_TRUE(ring.push("after").ok());
  ASSERT_TRUE(ring.push_flush().ok());
  ASSERT_TRUE(read_exact(rd.get(), &seen, sizeof seen).ok());
  EXPECT_EQ(seen, 5001u);
  ring.close();
  EXPECT_EQ(wait_exit_code(child), 0);
}

TEST(ShmRing, BlockedProducerNoticesConsumerDeath) {
  ShmRing ring = make_ring(4096);
  pid_t child = fork_child([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ring.set_consumer_error("disk full");
    return 1;  // dies without popping anything
  });
  ASSERT_TRUE(ring.set_consumer_pid(child).ok());
  Status st;
  for (int i = 0; i < 100 && st.ok(); ++i) st = ring.push(std::string(1000, 'r'));
  EXPECT_EQ(st.code(), Status::Code::kAborted);
  EXPECT_NE(st.message().find("log writer died: disk full"), std::string::npos) << st.message();
  // Once known dead, the producer fails fast instead of filling what space is left.
  EXPECT_EQ(ring.push("x").code(), Status::Code::kAborted);
  EXPECT_EQ(wait_exit_code(child), 1);
}

TEST(ShmRing, PushFlushNoticesConsumerDeath) {
  ShmRing ring = make_ring(4096);
  pid_t child = fork_child([&] {
    auto rec = ring.pop();  // takes the marker but never acknowledges it
    return rec && rec->kind == Record::kFlush ? 0 : 3;
  });
  ASSERT_TRUE(ring.set_consumer_pid(child).ok());
  EXPECT_EQ(ring.push_flush().code(), Status::Code::kAborted);
  EXPECT_EQ(wait_exit_code(child), 0);
}

TEST(ShmRing, ConsumerDrainsWhatADeadProducerLeft) {
  ShmRing ring = make_ring(4096);
  pid_t child = fork_child([&] {
    for (int i = 0; i < 10; ++i) {
      if (!ring.push(make_record(i, 20)).ok()) return 3;
    }
    return 0;  // exits without close()
  });
  ASSERT_TRUE(ring.set_producer_pid(child).ok());
  int n = 0;
  while (auto rec = ring.pop()) EXPECT_EQ(rec->data, make_record(n++, 20));
  EXPECT_EQ(n, 10);
  EXPECT_TRUE(ring.producer_lost());
  EXPECT_EQ(wait_exit_code(child), 0);
}

TEST(ShmRing, TrickleReachesAParkedConsumer) {
  ShmRing ring = make_ring(1 << 20);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ScopedFd rd(fds[0]), wr(fds[1]);
  pid_t child = fork_child([&] {
    while (auto rec = ring.pop()) {
      if (!write_all(wr.get(), "k").ok()) return 4;
    }
    return 0;
  });
  // One tiny record, far below the batch threshold: the consumer's poll must still deliver it,
  // without a flush or a close (a generous deadline: the machine may be loaded). The pause
  // gives the consumer time to park first; the test is right whether or not it has.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(ring.push("tiny").ok());
  pollfd got{rd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&got, 1, 30000), 1) << "the record never reached the parked consumer";
  char c;
  ASSERT_TRUE(read_exact(rd.get(), &c, 1).ok());
  ring.close();
  EXPECT_EQ(wait_exit_code(child), 0);
}

TEST(ShmRing, MovedRingKeepsWorking) {
  ShmRing a = make_ring(128);
  ASSERT_TRUE(a.push("one").ok());
  ShmRing b = std::move(a);
  auto rec = b.pop();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->data, "one");
}

}  // namespace
}  // namespace relive::transport
