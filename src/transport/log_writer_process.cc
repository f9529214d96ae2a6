#include "transport/log_writer_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>
#include <utility>

namespace relive::transport {
namespace {

constexpr int kExitSinkFailed = 1;
constexpr int kExitProducerLost = 2;
constexpr auto kDrainGrace = std::chrono::seconds(2);

// Records the child's failure where the parent can read it (the ring) and where an operator sees
// it (stderr), and returns the exit code.
int fail(ShmRing& ring, const Status& status, int code = kExitSinkFailed) {
  std::string msg = status.to_string();
  ring.set_consumer_error(msg);
  std::fprintf(stderr, "relive log writer: %s\n", msg.c_str());
  return code;
}

// Handles one record; a flush is acknowledged only once the sink made it durable, so a failed
// flush surfaces in the producer as a dead log writer rather than as a false success.
Status handle(ShmRing& ring, RecordSink& sink, const ShmRing::Record& rec) {
  if (rec.kind == ShmRing::Record::kData) return sink.append(rec.data);
  RELIVE_RETURN_IF_ERROR(sink.flush());
  ring.ack_flush();
  return Status::Ok();
}

int drain(ShmRing& ring, PidWatch parent, const LogWriterProcess::SinkFactory& make_sink) {
  ring.watch_producer(std::move(parent));
  auto sink = make_sink();
  if (!sink.ok()) return fail(ring, sink.status().with_context("open the log sink"));
  ShmRing::Record rec;
  while (ring.pop_into(rec)) {
    (*sink)->backlog(ring.queued_bytes(), ring.capacity());
    if (Status st = handle(ring, **sink, rec); !st.ok()) return fail(ring, st);
  }
  if (ring.producer_lost()) {
    // Keep what arrived, but do not finish(): the log must not look complete.
    (void)(*sink)->flush();
    return fail(ring, Status::Aborted("the tracer died without closing the ring"),
                kExitProducerLost);
  }
  if (Status st = (*sink)->finish(); !st.ok()) return fail(ring, st.with_context("finish"));
  return 0;
}

// The terminal sends SIGINT, SIGQUIT and SIGHUP to the whole foreground process group; the tracer
// decides what they mean and closes the ring, so the writer must outlive them. SIGPIPE is ignored
// so that a sink writing to a closed socket gets EPIPE (an error message) instead of dying
// silently.
void ignore_signals() {
  for (int sig : {SIGINT, SIGQUIT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_IGN);
}

int child_main(ShmRing& ring, PidWatch parent, const LogWriterProcess::SinkFactory& make_sink) {
  ignore_signals();
  int code = kExitSinkFailed;
  // Subprocess::fork_call keeps exceptions from unwinding into the parent's stack frames; here
  // they also leave their message where the parent reads it.
  try {
    code = drain(ring, std::move(parent), make_sink);
  } catch (const std::exception& e) {
    code = fail(ring, Status::Aborted(std::string("uncaught exception: ") + e.what()));
  } catch (...) {
    code = fail(ring, Status::Aborted("uncaught exception"));
  }
  return code;
}

Status describe_exit(const ExitStatus& st, const ShmRing& ring) {
  if (st.ok()) return Status::Ok();
  std::string why = ring.consumer_error();
  if (st.term_signal == 0) {
    return Status::IoError("log writer exited with status " + std::to_string(st.exit_code) +
                           (why.empty() ? "" : ": " + why));
  }
  return Status::Aborted("log writer killed by signal " + std::to_string(st.term_signal));
}

}  // namespace

RecordSink::~RecordSink() = default;

Result<LogWriterProcess> LogWriterProcess::start(ShmRing& ring, SinkFactory make_sink) {
  // Opened before fork() and inherited, so the child watches us even if we die right away.
  RELIVE_ASSIGN_OR_RETURN(PidWatch self, PidWatch::open(::getpid()));
  auto body = [&ring, &self, &make_sink] { return child_main(ring, std::move(self), make_sink); };
  Result<Subprocess> child = Subprocess::fork_call(body);
  if (!child.ok()) return child.status().with_context("fork log writer");
  pid_t pid = child->pid();
  LogWriterProcess writer(&ring, std::move(*child));
  if (Status st = ring.set_consumer_pid(pid); !st.ok()) {
    return st.with_context("watch the log writer");  // ~LogWriterProcess reaps the child
  }
  return writer;
}

LogWriterProcess::LogWriterProcess(LogWriterProcess&& o) noexcept
    : ring_(o.ring_),
      child_(std::move(o.child_)),
      finished_(o.finished_),
      result_(std::move(o.result_)) {}

LogWriterProcess& LogWriterProcess::operator=(LogWriterProcess&& o) noexcept {
  if (this != &o) {
    abandon();
    ring_ = o.ring_;
    child_ = std::move(o.child_);
    finished_ = o.finished_;
    result_ = std::move(o.result_);
  }
  return *this;
}

LogWriterProcess::~LogWriterProcess() { abandon(); }

Status LogWriterProcess::finish() {
  if (finished_ || !child_.valid()) return result_;
  ring_->close();
  Result<ExitStatus> st = child_.wait();
  finished_ = true;
  result_ = st.ok() ? describe_exit(*st, *ring_) : st.status().with_context("log writer");
  return result_;
}

// Error-path cleanup: lets the child drain what is queued (useful for debugging a failed
// recording), but never waits for it indefinitely: after the grace it is killed and reaped.
void LogWriterProcess::abandon() {
  if (!child_.valid() || finished_) return;
  ring_->close();
  if (!child_.try_wait(std::chrono::duration_cast<std::chrono::milliseconds>(kDrainGrace))) {
    child_.kill();
  }
  finished_ = true;
}

}  // namespace relive::transport
