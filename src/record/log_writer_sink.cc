// The production EventSink: tracer -> ShmRing (Boost.Interprocess shared memory) -> log-writer
// process -> EventLogWriter (LZ4, checksummed segments). The tracer never blocks on disk, and
// only on the writer when the ring is full: the writer compresses less the further the tracer
// gets ahead (a program logging read data at hundreds of MB/s outpaces LZ4 at its best).
#include <memory>

#include "record/event_sink.h"
#include "trace/event_log_writer.h"
#include "transport/log_writer_process.h"
#include "transport/shm_ring.h"
#include "wire/event_codec.h"

namespace relive::record {
namespace {

// Records up to half of this fit (one syscall's out-buffers); a smaller ring keeps the pages the
// tracer and the writer touch hot (measured: 64 MiB costs 20 % more per syscall than 4 MiB).
constexpr size_t kRingBytes = size_t{32} << 20;

class SegmentFileSink : public transport::RecordSink {
 public:
  explicit SegmentFileSink(trace::EventLogWriter w) : writer_(std::move(w)) {}
  Status append(std::string_view record) override { return writer_.append(record); }
  Status flush() override { return writer_.flush(); }
  Status finish() override { return writer_.sync(); }
  void backlog(size_t queued, size_t capacity) override {
    writer_.set_acceleration(compression_acceleration(queued, capacity));
  }

 private:
  trace::EventLogWriter writer_;
};

class LogWriterSink : public EventSink {
 public:
  LogWriterSink(std::unique_ptr<transport::ShmRing> ring, transport::LogWriterProcess writer)
      : ring_(std::move(ring)), writer_(std::move(writer)) {}

  Status emit(const trace::Event& e) override {
    ++events_;
    return ring_->push(wire::encode_event(e));
  }
  Status flush() override { return ring_->push_flush(); }
  Status finish() override { return writer_.finish(); }
  uint64_t events() const override { return events_; }

 private:
  std::unique_ptr<transport::ShmRing> ring_;  // outlives writer_, which points at it
  transport::LogWriterProcess writer_;
  uint64_t events_ = 0;
};

}  // namespace

int compression_acceleration(size_t queued, size_t capacity) {
  if (queued < capacity / 8) return 1;
  if (queued < capacity / 4) return 4;
  if (queued < capacity / 2) return 16;
  return 64;
}

Result<std::unique_ptr<EventSink>> make_log_writer_sink(const std::string& events_path) {
  RELIVE_ASSIGN_OR_RETURN(transport::ShmRing ring, transport::ShmRing::create(kRingBytes));
  auto owned = std::make_unique<transport::ShmRing>(std::move(ring));
  auto factory = [events_path]() -> Result<std::unique_ptr<transport::RecordSink>> {
    RELIVE_ASSIGN_OR_RETURN(trace::EventLogWriter w, trace::EventLogWriter::create(events_path));
    return std::unique_ptr<transport::RecordSink>(new SegmentFileSink(std::move(w)));
  };
  RELIVE_ASSIGN_OR_RETURN(transport::LogWriterProcess proc,
                          transport::LogWriterProcess::start(*owned, factory));
  return std::unique_ptr<EventSink>(new LogWriterSink(std::move(owned), std::move(proc)));
}

}  // namespace relive::record
