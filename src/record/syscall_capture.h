// Turns a completed system call into its SyscallEvent: result, out-buffers, the saved copy of a
// mapped file, and whether a write went to the recorder's own stdout/stderr.
#pragma once

#include <sys/stat.h>

#include <unordered_map>
#include <vector>

#include "relive/result.h"
#include "trace/file_store.h"
#include "tracee/syscall_buffer.h"
#include "tracee/syscall_policy.h"
#include "tracee/task.h"
#include "wire/trace_types.h"

namespace relive::record {

class SyscallCapture {
 public:
  // `files` must outlive this object.
  explicit SyscallCapture(trace::FileStore* files);
  // For an attached process: its own stdout/stderr at attach time are the streams to reproduce.
  SyscallCapture(trace::FileStore* files, pid_t attached);

  Result<trace::SyscallEvent> capture(const tracee::Task& task, int nr,
                                      const tracee::SyscallArgs& args, int64_t result,
                                      tracee::Policy policy);

  // The events of the calls the fast path made (tracee/syscall_buffer.h), in order, logged
  // exactly as the traced calls would be: a read's bytes as its out-buffer, a write's hash and
  // stream. A write's stream is its descriptor's as of the write: the descriptors the calls open
  // and close are known by the identity of their files, which the fast path logs with them.
  std::vector<trace::SyscallEvent> from_buffer(pid_t tid,
                                               std::vector<tracee::BufferedCall>&& calls);

  // Saves a file (e.g. a newly exec'd program) in the trace's file store; returns its name.
  Result<std::string> save_file(const std::string& path) { return files_->add(path); }

  // True when `fd` of thread `tid` is the recorder's own stdout or stderr.
  bool is_recorder_output(pid_t tid, int fd) { return stream_of(tid, fd) != trace::Stream::kNone; }

  // A syscall that may change some thread's descriptor table has entered (it may complete in
  // the kernel before its exit is captured): what is known of descriptors no longer holds.
  void fd_table_may_change() { stream_cache_.clear(); }

 private:
  Status capture_writes(const tracee::Task& task, trace::SyscallEvent* ev);
  Status capture_output(const tracee::Task& task, trace::SyscallEvent* ev);
  Status capture_mapped_file(const tracee::Task& task, trace::SyscallEvent* ev);
  trace::Stream stream_of(pid_t tid, int fd);
  trace::Stream stream_of_file(uint64_t dev, uint64_t ino) const;
  static pid_t holder_outside_recording(dev_t dev, ino_t ino);

  trace::FileStore* files_;
  struct stat stdout_ {};
  struct stat stderr_ {};
  bool have_stdout_ = false, have_stderr_ = false;
  // (tid, fd) -> stream, until a descriptor table changes. Per thread, never per descriptor
  // number alone: the processes of one recording each have their own table (a pipeline's writer
  // has a pipe as fd 1 where its reader has the recorder's stdout).
  static uint64_t cache_key(pid_t tid, int fd) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(tid)) << 32) | static_cast<uint32_t>(fd);
  }
  std::unordered_map<uint64_t, trace::Stream> stream_cache_;
};

}  // namespace relive::record
