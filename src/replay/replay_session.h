// ReplaySession: drives a restored or re-executed process through its trace. Threads run one at
// a time in the recorded order; emulated syscalls are skipped and their logged results and
// out-buffers written in; memory-management syscalls run for real; file mappings map the saved
// copies; signals are delivered where they were recorded.
#pragma once

#include <sys/types.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "relive/result.h"
#include "trace/file_store.h"
#include "trace/trace_reader.h"
#include "tracee/inject.h"
#include "tracee/site_patcher.h"
#include "tracee/syscall_buffer.h"
#include "tracee/syscall_policy.h"
#include "tracee/task.h"
#include "wire/trace_types.h"

namespace relive::replay {

class ReplaySession {
 public:
  enum class Mode {
    kSeccomp,      // launched: a seccomp filter stops the calls that are replayed
    kAllSyscalls,  // restored from a checkpoint: PTRACE_SYSCALL stops at every call
    // Restored from a checkpoint, with the fast path: syscall user dispatch (the caller turns it
    // on in the first thread: tracee/syscall_dispatch.h) stops every call but the fast path's.
    kDispatch,
  };
  struct Output {
    int stdout_fd = 1;
    int stderr_fd = 2;
  };
  // `reader` must outlive the session.
  ReplaySession(Mode mode, trace::TraceReader* reader, Output out);
  ~ReplaySession();
  ReplaySession(const ReplaySession&) = delete;
  ReplaySession& operator=(const ReplaySession&) = delete;

  // The first thread (real tid), stopped at a syscall-exit stop, known as `recorded_tid`.
  // `leader`: the process's first thread; a checkpoint of a multi-threaded process adds the
  // others after it.
  void add_initial_thread(pid_t tid, int32_t recorded_tid, bool leader = true);
  // Replays every event; returns the process's wait status (the recorded one).
  Result<int> run();

  // Follows a log that is still growing (live migration): at the end of the bytes so far the
  // session calls `wait_for_more`, and reads on when it returns true; false means the log is
  // complete.
  void follow(std::function<Result<bool>()> wait_for_more) {
    wait_for_more_ = std::move(wait_for_more);
  }
  // At a DetachEvent, leave the process stopped at the entry of its next traced syscall (the
  // point where a frozen recording left the original; see RecordSession::kFreeze) instead of
  // where the last event left it. Its real tid: leader_tid().
  void park_at_detach() { park_at_detach_ = true; }
  // Off: every clock call replays through a ptrace stop, none from the syscall buffer.
  void set_syscall_buffer(bool on) { buffer_on_ = on; }
  pid_t leader_tid() const;
  uint64_t events() const { return index_; }
  // How many of those events the replayed program took from its syscall buffer, without a stop
  // (tracee/syscall_buffer.h).
  uint64_t buffered() const { return buffered_; }

 private:
  // The index of the event being replayed, as `relive dump` numbers it.
  uint64_t current_index() const { return index_ - 1; }

 private:
  // What a replayed write must put out: its logged hash and the stream it went to.
  struct WriteCheck {
    uint64_t data_hash = 0;
    trace::Stream stream = trace::Stream::kNone;
  };
  struct Thread {
    tracee::Task task;
    int32_t rec_tid = 0;
    bool started = true;  // false until a new thread's first stop has been consumed
    bool parked = false;  // stopped at the entry of the syscall recorded next for it
    bool at_exit_stop = false;
    bool preempted = false;  // stopped where the recording preempted it (PreemptEvent)
    int resume_sig = 0;      // signal to deliver when next resumed
    int queued_sig = 0;      // made pending for a native rt_sigsuspend: taken, not injected
    int nr = -1;
    tracee::SyscallArgs args{};
    tracee::Regs entry_regs{};
    // Calls prefilled into the syscall buffer for the thread to take before its next stop, and
    // the index of the first one's event.
    std::vector<tracee::BufferedCall> prefilled;
    std::vector<WriteCheck> prefilled_out;  // of each: the output a write must reproduce
    uint64_t checked_writes = 0;            // prefilled calls whose output is checked
    uint64_t prefilled_from = 0;
    uint64_t prefill_answered = 0;  // of them, made without a trampoline and answered at a stop
    int current_trampolines = -1;   // its process runs this build's trampolines: -1 not known
    // The syscall sites patched in this thread's address space (shared by its threads).
    std::shared_ptr<tracee::SitePatcher> sites;
    bool reissuing = false;       // dispatch mode: a dispatched call made again, before its entry
    uint64_t reissue_return = 0;  // where it returns (syscall_dispatch.h)
  };

  Result<std::optional<trace::Event>> next();
  // tracee::wait_stop for `t`; in dispatch mode a call dispatch stopped is made again and its
  // entry stop returned instead.
  Result<std::pair<pid_t, tracee::Stop>> wait_for(Thread& t);
  Status go_on(const tracee::Task& task, int sig = 0) const;
  Status enable_dispatch(Thread& t, tracee::Injector::At at);
  // The next event from the log; at its end, with `wait`, waits for a growing log to grow.
  Result<std::optional<trace::Event>> read_event(bool wait = true);
  Status park(const trace::DetachEvent& detach);
  Result<bool> signal_follows(int32_t tid);
  // The signal of the next event of thread `tid`, when that event is a signal (else 0).
  Result<int> signal_that_follows(int32_t tid);
  Result<Thread*> thread_of(int32_t rec_tid);

  Status on_syscall(const trace::SyscallEvent& ev);
  Status complete_sigsuspend(Thread& t, const trace::SyscallEvent& ev);
  Status on_entry(const trace::SyscallEntryEvent& ev);
  Status on_signal(const trace::SignalEvent& ev);
  Status on_rdtsc(const trace::RdtscEvent& ev);
  Status on_preempt(const trace::PreemptEvent& ev);
  Status on_site_patch(const trace::SitePatchEvent& ev);
  Status start_thread(Thread& t);
  Status on_thread_exit(const trace::ThreadExitEvent& ev);
  Result<int> on_process_exit(const trace::ProcessExitEvent& ev);

  Status run_to_entry(Thread& t);
  Result<bool> prefill(Thread& t, const trace::SyscallEvent& ev);
  Result<bool> settle_prefill(Thread& t);
  Status check_buffered_writes(Thread& t, const std::vector<tracee::BufferedCall>& calls,
                               uint64_t taken);
  Status put_out(const Thread& t, uint64_t index, const WriteCheck& w, uint64_t fd,
                 std::string_view data);
  Result<bool> read_ahead(size_t i);
  Status resume(Thread& t);
  Status skip_untraced(Thread& t, tracee::Policy p);
  Status complete_emulated(Thread& t, const trace::SyscallEvent& ev);
  Status complete_native(Thread& t, const trace::SyscallEvent& ev);
  Status complete_map_file(Thread& t, const trace::SyscallEvent& ev);
  Status complete_exit(Thread& t, const trace::SyscallEvent& ev);
  Status wait_gone(const tracee::Task& task, int32_t rec_tid);
  Status expect_log_end(const char* end);
  Status adopt_child(Thread& parent, const trace::SyscallEvent& ev, tracee::Policy policy,
                     pid_t new_real);
  Status prepare_exec_image(Thread& t, const trace::SyscallEvent& ev);
  Status stop_at_exit_if_signal_follows(Thread& t, const trace::SyscallEvent& ev);
  Status reproduce_output(Thread& t, const trace::SyscallEvent& ev);
  Status apply_writes(const Thread& t, const trace::SyscallEvent& ev);
  // Writes logged bytes into the thread's memory, or the divergence at event `index`.
  Status write_logged(const Thread& t, uint64_t index, uint64_t addr, std::string_view data);
  // The syscall the thread is parked at is skipped and returns `result`, as logged.
  void answer_parked(const Thread& t, int64_t result);
  Result<std::string> mapped_file_path(const std::string& name);
  Result<std::string> shared_copy(const trace::SyscallEvent& ev, const std::string& saved);
  Status unexpected_stop(const Thread& t, const std::string& what);

  Mode mode_;
  trace::TraceReader* reader_;
  Output out_;
  std::map<int32_t, Thread> threads_;  // by recorded tid
  std::set<pid_t> exiting_groups_;     // this run's processes a thread of which called exit_group
  std::deque<trace::Event> ahead_;     // read ahead of the current event
  std::function<Result<bool>()> wait_for_more_;
  bool park_at_detach_ = false;
  bool buffer_on_ = true;
  bool handed_over_ = false;  // ended at a DetachEvent: the process lives on (its caller's)
  std::optional<trace::FileStore> files_;  // the trace's saved files, opened on first use
  std::set<std::string> verified_files_;
  std::string shared_dir_;                            // working copies of shared mappings
  std::map<std::string, std::string> shared_copies_;  // shared_key -> working copy
  uint64_t index_ = 0;                                // index of the event being replayed
  uint64_t buffered_ = 0;
  int32_t leader_ = 0;
  int exit_status_ = 0;
  bool process_gone_ = false;
};

}  // namespace relive::replay
