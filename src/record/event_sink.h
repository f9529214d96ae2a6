// Where the recorder's events go. The production sink encodes each event and pushes it into a
// shared-memory ring drained by a separate log-writer process; tests use an in-memory sink.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "relive/result.h"
#include "wire/trace_types.h"

namespace relive::record {

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual Status emit(const trace::Event& event) = 0;
  // Makes every event emitted so far durable in the trace (readable by a follower).
  virtual Status flush() = 0;
  // Flushes and stops the writer; no emit() after this.
  virtual Status finish() = 0;
  virtual uint64_t events() const = 0;
};

// Starts the log-writer process writing `events_path`.
Result<std::unique_ptr<EventSink>> make_log_writer_sink(const std::string& events_path);

// The LZ4 acceleration the log writer uses with `queued` of its ring's `capacity` bytes waiting:
// its best compression while it keeps up, faster (and larger) the further the tracer gets ahead,
// since a full ring stops the tracer and the recording then runs at the writer's pace.
int compression_acceleration(size_t queued, size_t capacity);

class MemorySink : public EventSink {
 public:
  Status emit(const trace::Event& e) override {
    events_.push_back(e);
    return Status::Ok();
  }
  Status flush() override { return Status::Ok(); }
  Status finish() override { return Status::Ok(); }
  uint64_t events() const override { return events_.size(); }
  const std::vector<trace::Event>& all() const { return events_; }

 private:
  std::vector<trace::Event> events_;
};

}  // namespace relive::record
