#include "transport/shm_ring.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/sync/interprocess_semaphore.hpp>
#include <cstring>
#include <new>

#include "common/check.h"

namespace relive::transport {
namespace bi = boost::interprocess;
namespace {

// Each record is a 32-bit header (length, plus kFlushBit for a flush marker) followed by the
// payload, both possibly split at the end of the data area.
constexpr uint32_t kFlushBit = 1u << 31;
constexpr size_t kHeaderBytes = sizeof(uint32_t);
constexpr size_t kControlBytes = 4096;           // the data area starts on its own page
constexpr size_t kEagerBytes = size_t{2} << 20;  // populated at creation (see create())
constexpr size_t kMaxWakeBatch = 64 << 10;
constexpr int kPollMs = 50;

// Sleeps on `sem` for at most kPollMs; false on timeout. A signal interrupting sem_timedwait makes
// Boost throw; that is just an early wakeup, and the caller re-checks its condition anyway.
bool sleep_on(bi::interprocess_semaphore& sem) {
  auto deadline = boost::posix_time::microsec_clock::universal_time() +
                  boost::posix_time::milliseconds(kPollMs);
  try {
    return sem.timed_wait(deadline);
  } catch (const bi::interprocess_exception&) {
    return true;
  }
}

// Blocks until ready() holds, parked on `sem` with `parked` raised so that the other side knows to
// post it. The flag is raised before ready() is re-checked and the other side publishes before it
// reads the flag (all seq_cst), so at least one of the two sees the other: no lost wakeup.
// Returns false, without waiting further, when peer_gone() says nobody is left to post.
template <typename Ready, typename Gone>
bool park_until(std::atomic<uint32_t>& parked, bi::interprocess_semaphore& sem, Ready ready,
                Gone peer_gone) {
  while (!ready()) {
    parked.store(1);
    if (ready()) break;
    if (!sleep_on(sem) && !ready() && peer_gone()) {
      parked.store(0);
      return false;
    }
  }
  parked.store(0);
  return true;
}

// Posts `sem` once if the other side is parked. A post that arrives after the sleeper timed out
// leaves a stale count behind; that only costs the sleeper one extra loop later.
void wake(std::atomic<uint32_t>& parked, bi::interprocess_semaphore& sem) {
  if (parked.load() == 0 || parked.exchange(0) == 0) return;
  try {
    sem.post();
  } catch (const bi::interprocess_exception&) {
    // Only EOVERFLOW is possible, and then the sleeper is awake already.
  }
}

}  // namespace

// Lives at the start of the shared region. Positions are byte counts since creation and never
// wrap (2^64 bytes); `pos % capacity` is the offset in the data area.
struct ShmRing::Control {
  explicit Control(uint64_t cap) : capacity(cap) {}

  const uint64_t capacity;
  // Each side's hot position gets its own cache line, and so does each parked flag: the flags are
  // read on every push/pop but written rarely, so they must not share a line with a position.
  alignas(64) std::atomic<uint64_t> head{0};  // producer-written
  std::atomic<uint32_t> closed{0};
  alignas(64) std::atomic<uint64_t> tail{0};  // consumer-written
  std::atomic<uint64_t> flushes_acked{0};
  alignas(64) std::atomic<uint32_t> producer_parked{0};  // set by the producer, cleared by either
  alignas(64) std::atomic<uint32_t> consumer_parked{0};  // set by the consumer, cleared by either
  alignas(64) std::atomic<uint32_t> error_len{0};
  char error[500] = {};
  // Never destroyed: after fork() no process knows whether it is the last user, and a Linux
  // process-shared semaphore holds no kernel resource beyond the memory it lives in.
  alignas(64) bi::interprocess_semaphore producer_wake{0};
  bi::interprocess_semaphore consumer_wake{0};
};

static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared atomics must not use locks");

Result<ShmRing> ShmRing::create(size_t capacity_bytes) {
  static_assert(sizeof(Control) <= kControlBytes);
  if (capacity_bytes < kMinCapacity || capacity_bytes > kMaxCapacity) {
    return Status::InvalidArgument("ring capacity " + std::to_string(capacity_bytes) +
                                   " is outside [64 B, 1 GiB]");
  }
  try {
    bi::mapped_region region = bi::anonymous_shared_memory(kControlBytes + capacity_bytes);
    // Fault the first pages in now, before fork: first touches on the hot path cost more than
    // the copies themselves (measured on the project's VMs). Only the first kEagerBytes: the
    // whole 32 MiB ring of a recording took 30 ms to populate and 5 ms to unmap, most of
    // `relive record true`; a log that outgrows the prefix pays its first touches spread over
    // a run long enough to write it.
    ::madvise(region.get_address(), std::min(region.get_size(), kControlBytes + kEagerBytes),
              MADV_POPULATE_WRITE);
    new (region.get_address()) Control(capacity_bytes);
    return ShmRing(std::move(region));
  } catch (const bi::interprocess_exception& e) {
    return Status::IoError("shared ring of " + std::to_string(capacity_bytes) +
                           " bytes: " + e.what());
  }
}

ShmRing::ShmRing(bi::mapped_region region)
    : region_(std::move(region)),
      ctl_(static_cast<Control*>(region_.get_address())),
      data_(static_cast<char*>(region_.get_address()) + kControlBytes),
      capacity_(ctl_->capacity),
      wake_consumer_at_(std::min(capacity_ / 4, kMaxWakeBatch)) {}

ShmRing::ShmRing(ShmRing&&) noexcept = default;
ShmRing& ShmRing::operator=(ShmRing&&) noexcept = default;
ShmRing::~ShmRing() = default;

void ShmRing::copy_in(uint64_t pos, const void* src, size_t len) {
  size_t off = pos % capacity_;
  size_t first = std::min(len, capacity_ - off);
  std::memcpy(data_ + off, src, first);
  std::memcpy(data_, static_cast<const char*>(src) + first, len - first);
}

void ShmRing::copy_out(uint64_t pos, void* dst, size_t len) const {
  size_t off = pos % capacity_;
  size_t first = std::min(len, capacity_ - off);
  std::memcpy(dst, data_ + off, first);
  std::memcpy(static_cast<char*>(dst) + first, data_, len - first);
}

// --- producer ---

Status ShmRing::set_consumer_pid(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(consumer_, PidWatch::open(pid));
  return Status::Ok();
}

Status ShmRing::consumer_gone_status() {
  consumer_dead_ = true;
  std::string why = consumer_error();
  return Status::Aborted(why.empty() ? "log writer died" : "log writer died: " + why);
}

// Waits until `bytes` more fit. The stale cached tail answers most calls without touching the
// consumer's cache line.
Status ShmRing::reserve(size_t bytes) {
  uint64_t head = ctl_->head.load(std::memory_order_relaxed);
  if (capacity_ - (head - cached_tail_) >= bytes) return Status::Ok();
  auto fits = [&] {
    cached_tail_ = ctl_->tail.load();
    return capacity_ - (head - cached_tail_) >= bytes;
  };
  auto gone = [&] { return consumer_.exited(); };
  if (park_until(ctl_->producer_parked, ctl_->producer_wake, fits, gone)) return Status::Ok();
  return consumer_gone_status();
}

// Makes everything up to `new_head` visible and wakes a parked consumer if there is enough to
// be worth it (or `urgent`); otherwise its 50 ms poll picks the records up.
void ShmRing::publish(uint64_t new_head, bool urgent) {
  ctl_->head.store(new_head);
  if (ctl_->consumer_parked.load() == 0) return;
  if (urgent || new_head - ctl_->tail.load() >= wake_consumer_at_) {
    wake(ctl_->consumer_parked, ctl_->consumer_wake);
  }
}

Status ShmRing::push(std::string_view record) {
  if (record.size() > max_record_size()) {
    return Status::InvalidArgument("record of " + std::to_string(record.size()) +
                                   " bytes exceeds the ring's limit of " +
                                   std::to_string(max_record_size()));
  }
  if (ctl_->closed.load(std::memory_order_relaxed)) {
    return Status::InvalidArgument("push on a closed ring");
  }
  if (consumer_dead_) return consumer_gone_status();
  RELIVE_RETURN_IF_ERROR(reserve(kHeaderBytes + record.size()));
  uint64_t head = ctl_->head.load(std::memory_order_relaxed);
  auto header = static_cast<uint32_t>(record.size());
  copy_in(head, &header, kHeaderBytes);
  copy_in(head + kHeaderBytes, record.data(), record.size());
  publish(head + kHeaderBytes + record.size(), /*urgent=*/false);
  return Status::Ok();
}

Status ShmRing::push_flush() {
  if (ctl_->closed.load(std::memory_order_relaxed)) {
    return Status::InvalidArgument("flush on a closed ring");
  }
  if (consumer_dead_) return consumer_gone_status();
  RELIVE_RETURN_IF_ERROR(reserve(kHeaderBytes));
  uint64_t head = ctl_->head.load(std::memory_order_relaxed);
  uint32_t header = kFlushBit;
  copy_in(head, &header, kHeaderBytes);
  publish(head + kHeaderBytes, /*urgent=*/true);

  uint64_t target = ++flushes_sent_;
  auto acked = [&] { return ctl_->flushes_acked.load() >= target; };
  auto gone = [&] { return consumer_.exited(); };
  if (park_until(ctl_->producer_parked, ctl_->producer_wake, acked, gone)) return Status::Ok();
  return consumer_gone_status();
}

void ShmRing::close() {
  ctl_->closed.store(1);
  wake(ctl_->consumer_parked, ctl_->consumer_wake);
}

// --- consumer ---

Status ShmRing::set_producer_pid(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(producer_, PidWatch::open(pid));
  return Status::Ok();
}

bool ShmRing::try_pop(Record* out) {
  uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
  if (cached_head_ == tail) {
    cached_head_ = ctl_->head.load();
    if (cached_head_ == tail) return false;
  }
  uint32_t header;
  copy_out(tail, &header, kHeaderBytes);
  size_t len = header & ~kFlushBit;
  // The producer is our own tracer; a bad header means a bug, not hostile input.
  RELIVE_CHECK(len <= max_record_size() && tail + kHeaderBytes + len <= cached_head_,
               "corrupt ring record header {:#x} at {} (head {})", header, tail, cached_head_);
  out->kind = (header & kFlushBit) ? Record::kFlush : Record::kData;
  out->data.resize(len);
  copy_out(tail + kHeaderBytes, out->data.data(), len);
  uint64_t new_tail = tail + kHeaderBytes + len;
  ctl_->tail.store(new_tail);
  wake_producer_if_worthwhile(new_tail);
  return true;
}

// A producer parked for space needs at most max_record_size() + header bytes; waiting until half
// the ring is free guarantees that and batches its wakeups.
void ShmRing::wake_producer_if_worthwhile(uint64_t new_tail) {
  if (ctl_->producer_parked.load() == 0) return;
  uint64_t free = capacity_ - (ctl_->head.load() - new_tail);
  if (free >= max_record_size() + kHeaderBytes) {
    wake(ctl_->producer_parked, ctl_->producer_wake);
  }
}

std::optional<ShmRing::Record> ShmRing::pop() {
  Record rec;
  if (!pop_into(rec)) return std::nullopt;
  return rec;
}

bool ShmRing::pop_into(Record& rec) {
  for (;;) {
    if (try_pop(&rec)) return true;
    // close() is stored after the last record's head, so re-checking after seeing it drains all.
    if (ctl_->closed.load() || producer_lost_) return try_pop(&rec);
    auto ready = [&] {
      return ctl_->head.load() != ctl_->tail.load(std::memory_order_relaxed) ||
             ctl_->closed.load() != 0;
    };
    auto gone = [&] { return producer_.exited(); };
    if (!park_until(ctl_->consumer_parked, ctl_->consumer_wake, ready, gone)) {
      producer_lost_ = true;
    }
  }
}

void ShmRing::ack_flush() {
  ctl_->flushes_acked.fetch_add(1);
  wake(ctl_->producer_parked, ctl_->producer_wake);
}

size_t ShmRing::queued_bytes() const {
  uint64_t tail = ctl_->tail.load(std::memory_order_relaxed);
  return static_cast<size_t>(ctl_->head.load(std::memory_order_acquire) - tail);
}

void ShmRing::set_consumer_error(std::string_view message) {
  size_t n = std::min(message.size(), sizeof(ctl_->error));
  std::memcpy(ctl_->error, message.data(), n);
  ctl_->error_len.store(static_cast<uint32_t>(n), std::memory_order_release);
}

std::string ShmRing::consumer_error() const {
  uint32_t n = ctl_->error_len.load(std::memory_order_acquire);
  return std::string(ctl_->error, std::min<size_t>(n, sizeof(ctl_->error)));
}

}  // namespace relive::transport
