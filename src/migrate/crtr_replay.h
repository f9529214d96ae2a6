// The destination's half of CR/TR-Motion: the source's checkpoint is restored here and its log
// replayed while it is still arriving, round by round, so that when the source freezes only
// the last round is left to replay. At the end the replayed process stands exactly where the
// source froze (RecordSession::kFreeze, ReplaySession::park_at_detach); its memory then stands
// in for the source's, and only the pages whose hashes differ travel.
//
// ptrace belongs to the thread that attached, so the replay runs on its own thread, which also
// keeps the replayed process stopped until release(). The caller (the migration session) feeds
// log bytes and reads memory from its own thread.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/scoped_fd.h"
#include "container/pid_namespace.h"
#include "relive/result.h"
#include "transfer/hash_keeper.h"
#include "transfer/page_hashes.h"

namespace relive::migrate {

class CrtrReplay {
 public:
  CrtrReplay() = default;
  ~CrtrReplay();
  CrtrReplay(const CrtrReplay&) = delete;
  CrtrReplay& operator=(const CrtrReplay&) = delete;

  // Restores the checkpoint of the trace in `trace_dir` (header and checkpoint/ received) into
  // a fresh PID namespace and starts replaying. Call from the session's (single) thread before
  // any other thread exists: it forks.
  Status start(const std::string& trace_dir, const std::string& criu);

  // Appends log bytes (whole segments) to the trace; `final`: the source has frozen.
  Status append_log(std::string_view bytes, bool final);
  // Waits until the replay has reached the end of the final log. The replay's error (a
  // divergence, say) if it failed.
  Status finish();
  // The replayed process (stopped at the source's freeze point) while finish() succeeded and
  // release() was not called.
  pid_t pid() const { return replayed_pid_; }
  // The hashes of the replayed process's anonymous memory once finish() succeeded: kept
  // current while it replayed (transfer/hash_keeper.h), so that only the last moments' pages
  // are hashed now; all of them where the kernel could not track writes. Once.
  Result<transfer::PageHashTable> hashes();
  // Whether hashes() is left with only what the replay wrote lately: the keeper's first pass is
  // done (true without a keeper: there is nothing to wait for).
  bool hashed_once();
  // The log bytes appended since the replay last ran out of log: how far behind the source it
  // may be (0 when it is waiting for more).
  uint64_t bytes_behind();
  uint64_t events() const { return events_; }
  // Kills the replayed process and its namespace.
  void release();
  void abort();

 private:
  void replay_main(std::string trace_dir, pid_t pid);
  Result<bool> wait_for_more();

  container::NamespaceRestore ns_{};
  ScopedFd events_fd_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;  // bumped on every append (guarded by mu_)
  uint64_t seen_ = 0;        // the generation the replay last read up to (replay thread)
  uint64_t appended_ = 0;    // log bytes appended (guarded by mu_)
  uint64_t caught_up_ = 0;   // appended_ when the replay last ran out of log (guarded by mu_)
  bool final_ = false;
  bool aborted_ = false;
  bool done_ = false;      // the replay thread reached the end (or failed)
  bool released_ = false;  // the replay thread may let the process go
  Status result_;
  pid_t replayed_pid_ = 0;
  uint64_t events_ = 0;
  // Armed by the replay thread on the restored process before it seizes it; used by hashes()
  // once the replay is done (guarded by mu_ until then).
  std::unique_ptr<transfer::HashKeeper> keeper_;
};

}  // namespace relive::migrate
