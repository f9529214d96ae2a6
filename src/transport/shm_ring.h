// ShmRing: the channel from the tracer (producer) to the separate log-writer process (consumer).
#pragma once

#include <sys/types.h>

#include <boost/interprocess/mapped_region.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "relive/result.h"
#include "transport/pid_watch.h"

namespace relive::transport {

// A single-producer single-consumer ring of variable-length records in anonymous shared memory.
// Create it before fork(): parent and child then share the same region, and nothing needs to be
// cleaned up by name afterwards (each process unmaps its view when its ShmRing is destroyed).
//
// Exactly one thread of one process pushes (push, push_flush, close) and exactly one pops (pop,
// ack_flush); each may use only its own side. Neither side makes a system call on the fast path: a
// side that has to wait parks on a process-shared semaphore, and the other side posts it only when
// the waiter is parked and enough has changed to be worth a wakeup (a quarter of the ring, at most
// 64 KiB, filled; half the ring freed; a flush; close). A parked side also re-checks every 50 ms,
// which bounds the delivery delay of a trickle of records and lets it notice a dead peer.
//
// Move-only. Each process unmaps its view when its ShmRing is destroyed (or when it exits); the
// kernel frees the memory once no process maps it.
class ShmRing {
 public:
  struct Record {
    enum Kind { kData, kFlush };
    Kind kind = kData;
    std::string data;  // empty for kFlush
  };

  static constexpr size_t kDefaultCapacity = size_t{64} << 20;
  static constexpr size_t kMinCapacity = 64;
  static constexpr size_t kMaxCapacity = size_t{1} << 30;

  // `capacity_bytes` is the size of the data area, kMinCapacity..kMaxCapacity.
  static Result<ShmRing> create(size_t capacity_bytes = kDefaultCapacity);

  ShmRing(ShmRing&&) noexcept;
  ShmRing& operator=(ShmRing&&) noexcept;
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;
  ~ShmRing();

  size_t capacity() const { return capacity_; }
  size_t max_record_size() const { return capacity() / 2; }

  // --- producer side ---
  // Makes push/push_flush return Aborted once `pid` has terminated while they wait for it.
  Status set_consumer_pid(pid_t pid);
  // Copies `record` into the ring, blocking while it is full. InvalidArgument when the record is
  // larger than max_record_size() or the ring is closed; Aborted when the consumer died.
  Status push(std::string_view record);
  // Enqueues a flush marker and blocks until the consumer has acknowledged it (ack_flush), i.e.
  // until everything pushed before it has been handled by the consumer.
  Status push_flush();
  // No more records; the consumer drains what is left and then pop() returns nullopt.
  void close();

  // --- consumer side ---
  // Makes pop() treat the producer's termination like close() (see producer_lost()).
  Status set_producer_pid(pid_t pid);
  // The same with a watch opened earlier, e.g. by the producer on itself before fork(), which
  // leaves no window in which the producer could die and be reaped unwatched.
  void watch_producer(PidWatch producer) { producer_ = std::move(producer); }
  // Blocks until a record or flush marker is available; nullopt once the ring is closed (or the
  // producer died) and drained.
  std::optional<Record> pop();
  // The same, reusing `out`'s buffer (no allocation per record once it has grown); false where
  // pop() returns nullopt.
  bool pop_into(Record& out);
  // Acknowledges the kFlush record most recently returned by pop() or pop_into().
  void ack_flush();
  // Bytes pushed and not popped yet (records and their framing): how far the producer is ahead.
  size_t queued_bytes() const;
  // True when pop() ended because the producer died rather than because it called close().
  bool producer_lost() const { return producer_lost_; }
  // Leaves a short message (truncated to ~500 bytes) for the producer to read after the consumer
  // failed; shown by consumer_error() and in push's Aborted status.
  void set_consumer_error(std::string_view message);
  std::string consumer_error() const;

 private:
  struct Control;
  explicit ShmRing(boost::interprocess::mapped_region region);

  void copy_in(uint64_t pos, const void* src, size_t len);
  void copy_out(uint64_t pos, void* dst, size_t len) const;
  Status reserve(size_t bytes);
  void publish(uint64_t new_head, bool urgent);
  bool try_pop(Record* out);
  void wake_producer_if_worthwhile(uint64_t new_tail);
  Status consumer_gone_status();

  boost::interprocess::mapped_region region_;
  Control* ctl_ = nullptr;
  char* data_ = nullptr;
  size_t capacity_ = 0;
  size_t wake_consumer_at_ = 0;  // bytes queued before a parked consumer is worth a wakeup
  // Side-local state; the other process's copy of these is never read.
  uint64_t cached_tail_ = 0;  // producer: a possibly stale view of ctl_->tail
  uint64_t cached_head_ = 0;  // consumer: a possibly stale view of ctl_->head
  uint64_t flushes_sent_ = 0;
  bool consumer_dead_ = false;
  bool producer_lost_ = false;
  PidWatch consumer_;
  PidWatch producer_;
};

}  // namespace relive::transport
