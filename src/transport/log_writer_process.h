// LogWriterProcess: the separate process that drains a ShmRing into a RecordSink, so that the
// tracer never waits for compression or disk I/O.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string_view>

#include "common/subprocess.h"
#include "relive/result.h"
#include "transport/shm_ring.h"

namespace relive::transport {

// Where the log writer puts records (e.g. a framed, compressed trace file). Each call happens in
// the log-writer process, in ring order.
class RecordSink {
 public:
  virtual ~RecordSink();
  virtual Status append(std::string_view record) = 0;
  // Makes everything appended so far durable; the producer's push_flush() returns after this.
  virtual Status flush() = 0;
  // Called once after the producer closed the ring and every record was appended.
  virtual Status finish() = 0;
  // Before records are appended: `queued` of the ring's `capacity` bytes wait behind them. A
  // sink that can trade work for speed (compression) spends less when the producer gets ahead.
  virtual void backlog(size_t queued, size_t capacity) {
    (void)queued;
    (void)capacity;
  }
};

// Owns the forked log-writer child. The child builds its sink with `make_sink` (called in the
// child, so the sink's fds and threads are its own), pops records until the ring is closed, calls
// finish() and _exits: 0 on success, non-zero with the message on stderr and in
// ShmRing::consumer_error() when a sink call failed; 2 when the parent died without closing the
// ring (what arrived is flushed, finish() is not called). The child ignores SIGINT, SIGQUIT,
// SIGHUP (the tracer decides when recording stops) and SIGPIPE, and never runs the parent's
// atexit handlers or destructors.
//
// Fork caveat: if the parent has other threads, `make_sink` and the sink run in a child where only
// the forking thread exists; they must not depend on locks another thread might have held.
//
// Move-only. `ring` must outlive this object. The destructor of an unfinished writer closes the
// ring, gives the child 2 s to drain, then kills it; it always reaps the child.
class LogWriterProcess {
 public:
  using SinkFactory = std::function<Result<std::unique_ptr<RecordSink>>()>;

  static Result<LogWriterProcess> start(ShmRing& ring, SinkFactory make_sink);

  LogWriterProcess(LogWriterProcess&& o) noexcept;
  LogWriterProcess& operator=(LogWriterProcess&& o) noexcept;
  LogWriterProcess(const LogWriterProcess&) = delete;
  LogWriterProcess& operator=(const LogWriterProcess&) = delete;
  ~LogWriterProcess();

  // Producer side: closes the ring, waits for the child and reports how it ended. Idempotent.
  Status finish();
  pid_t pid() const { return child_.pid(); }

 private:
  LogWriterProcess(ShmRing* ring, Subprocess child) : ring_(ring), child_(std::move(child)) {}
  void abandon();

  ShmRing* ring_ = nullptr;
  Subprocess child_;
  bool finished_ = false;
  Status result_;
};

}  // namespace relive::transport
