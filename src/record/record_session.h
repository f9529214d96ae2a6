// RecordSession: the tracer's event loop. It runs one thread of the recorded process in user
// space at a time, switching only at system calls, and logs every nondeterministic event (syscall
// results, signals, rdtsc) in the order the replayer must reproduce them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "record/event_sink.h"
#include "record/syscall_capture.h"
#include "relive/result.h"
#include "tracee/inject.h"
#include "tracee/site_patcher.h"
#include "tracee/syscall_policy.h"
#include "tracee/task.h"
#include "tracee/vdso.h"

namespace relive::record {

struct RecordStats {
  uint64_t syscalls = 0;
  uint64_t signals = 0;
  uint64_t signals_merged = 0;  // standard signals that arrived while one was held (pending)
  uint64_t rdtsc = 0;
  uint64_t threads = 0;
  uint64_t preemptions = 0;
  uint64_t buffered = 0;  // syscalls made through the fast path (counted in `syscalls` too)
  uint64_t sites_patched = 0;
};

class RecordSession {
 public:
  enum class Mode {
    kSeccomp,      // launched by us: a seccomp filter stops only the syscalls that matter
    kAllSyscalls,  // attached: PTRACE_SYSCALL stops at every syscall; detachable at any time
    // Attached, with the fast path: syscall user dispatch (tracee/syscall_dispatch.h) stops every
    // syscall but the fast path's, and is taken off again at detach. Threads run on PTRACE_CONT.
    kDispatch,
  };
  // `sink` and `capture` must outlive the session.
  RecordSession(Mode mode, EventSink* sink, SyscallCapture* capture);

  // Adopts a thread that exists when recording starts, stopped at a syscall-exit stop (in
  // dispatch mode, with dispatch turned on by the caller: tracee::enable_syscall_dispatch): the
  // process's own first (its leader), then, attached to a multi-threaded process, the others.
  void add_initial_thread(pid_t tid, bool leader = true);

  // Runs until the process exits; returns its wait status. On an unsupported operation the
  // process is killed (launched) or detached unharmed (attached) and the Status says why.
  Result<int> run();
  // Attached mode: when `*flag` becomes kDetach (from a signal handler), recording ends with a
  // DetachEvent and the process runs on untraced. When it becomes kFreeze, recording ends at the
  // entry of the process's next traced syscall (or inside a blocked one): the process is left
  // stopped (SIGSTOP) about to issue that syscall again, which is exactly the state a replay of
  // the log reaches when it runs on to its next syscall. A live migration's switch-over point.
  static constexpr int kDetach = 1;
  static constexpr int kFreeze = 2;
  void set_stop_flag(const volatile int* flag) { stop_flag_ = flag; }
  // Makes the events readable by a follower at least this often (live migration ships the log
  // while it grows); zero: only when the log writer's buffer fills.
  void set_flush_interval(std::chrono::milliseconds interval) { flush_interval_ = interval; }
  // Attached mode: the vDSO patch relive applied at attach, undone before the process is let go
  // (detach, freeze, failure), so that it runs on (or is checkpointed) with its own vDSO.
  void set_vdso_patch(const tracee::VdsoPatch& patch) { vdso_ = patch; }
  // Preemption (there are no branch counters to interrupt a thread after N branches): a thread
  // that has run a slice (10 ms) in user space without a syscall while another thread waits for its
  // turn is checked for a spin-wait, one pass of a loop that changes nothing (registers, FPU/SSE
  // state, writable memory), and if it is in one it is preempted there (a PreemptEvent, which
  // replay finds by running the thread until its state is the same). A thread that keeps running
  // past the spin limit while others wait, in a loop that changes state on every pass, cannot be
  // preempted replayably: the recording stops with Status::Unsupported naming it.
  // Zero: no limit.
  void set_spin_limit(std::chrono::milliseconds spin_limit) { spin_limit_ = spin_limit; }
  // Launched or dispatch mode: the fast path (tracee/syscall_buffer.h) logs the vDSO's clock
  // calls, and the common calls of the libc syscall sites it patches (tracee/syscall_sites.h),
  // without a ptrace stop; the tracer reads them at the thread's next stop. Off: every call is
  // traced.
  void set_syscall_buffer(bool on) { buffer_on_ = on && mode_ != Mode::kAllSyscalls; }
  // SIGCHLD from the tracer's own checkpoint child is not the program's: drop it.
  void ignore_sigchld_from(pid_t child) { ignored_child_ = child; }
  const RecordStats& stats() const { return stats_; }

 private:
  enum class State { kNew, kReady, kRunning, kInSyscall, kInUntracedSyscall, kZombie };
  struct Deferred {
    int signo;
    std::string siginfo;
  };
  struct Thread {
    explicit Thread(tracee::Task t) : task(std::move(t)) {}
    tracee::Task task;
    State state = State::kNew;
    bool at_syscall_exit = false;  // stopped where a signal can be injected on resume
    int nr = -1;
    tracee::SyscallArgs args{};
    tracee::Policy policy = tracee::Policy::kUnsupported;
    bool entry_unlogged = false;
    int64_t last_result = 0;
    bool forced = false;        // the syscall is skipped and returns forced_result
    int64_t forced_result = 0;  // entered a syscall whose entry is not in the log yet
    bool expect_boundary_signal = false;
    Deferred injecting{0, {}};
    std::deque<Deferred> deferred;
    bool initial_stop_seen = false;  // new thread: its first ptrace stop arrived
    bool clone_logged = false;       // new thread: its parent's clone is in the log
    bool interrupt_pending = false;  // PTRACE_INTERRUPT sent for a preemption check
    std::chrono::steady_clock::time_point interrupt_sent{};
    // How long this thread runs before it is checked for a spin-wait: shorter after it was
    // found spinning (a hand-off loop spins again soon), back up when it was not.
    std::chrono::milliseconds slice{10};
    std::optional<int64_t> restart_result;  // the call returned a restart code; see on_exit
    int deliver_on_resume = 0;              // a logged signal to deliver when next resumed
    // The syscall sites patched in this thread's address space (shared by its threads).
    std::shared_ptr<tracee::SitePatcher> sites;
    bool site_candidate = false;  // stopped at the exit of a traced fast-path call: patch its site?
    // Dispatch mode: a call dispatch stopped is being made again (selector "allow") and has not
    // reached its entry stop yet; the thread must not run user code before it does.
    bool reissuing = false;
    uint64_t reissue_return = 0;    // where the reissued call returns (syscall_dispatch.h)
    bool dispatch_on = false;       // dispatch mode: turned on in this thread
    bool stopped_at_entry = false;  // stop_all found it at a syscall-entry stop
  };

  Status step();
  Status dispatch(pid_t tid, const tracee::Stop& stop);
  void schedule();
  bool others_ready(pid_t tid) const;
  bool wants_turn_back(const Thread& t) const;
  bool blocked_threads_settled() const;
  Status on_slice_expired();
  Status on_interrupted(Thread& t);
  Status keep_running(Thread& t, const char* why);
  Status continue_thread(const Thread& t, int sig = 0) const;
  bool attached() const { return mode_ != Mode::kSeccomp; }
  std::optional<Status> on_dispatched(Thread& t, const tracee::Stop& stop);
  Status enable_dispatch(Thread& t, tracee::Injector::At at);
  void disable_dispatch(Thread& t, tracee::Injector::At at);
  Status resume(Thread& t);
  Status leave_syscall_site(Thread& t);
  Status on_entry(Thread& t, const tracee::Stop& stop);
  bool must_refuse_kernel_copy(Thread& t);
  Status on_exit(Thread& t, const tracee::Stop& stop);
  Status on_signal(Thread& t, int signo);
  void hold_signal(Thread& t, int signo, std::string siginfo);
  Status on_signal_after_restart_code(Thread& t, int signo);
  Status on_clone_event(Thread& t);
  Status on_thread_gone(pid_t tid, int status);
  Status on_exit_syscall(Thread& t, bool group);
  Status emit_for(pid_t tid, const trace::Event& ev);
  Status check_boundary_signal(Thread& t);
  Status add_clone_fixups(const Thread& parent, trace::SyscallEvent* ev);
  Status capture_exec(Thread& t, trace::SyscallEvent* ev);
  static bool other_threads_in_process(pid_t tid);
  void maybe_start(Thread& t);
  Status fail(Status why);
  void detach_all();
  void stop_all();
  void unpatch_vdso();
  bool freeze_requested() const;
  void begin_freeze();
  Status freeze(Thread& t, bool rewind_entry);
  Status maybe_flush();
  Status drain_buffer(Thread& t);
  Status hold_buffer(const Thread& t);
  Thread& thread(pid_t tid);

  Mode mode_;
  EventSink* sink_;
  SyscallCapture* capture_;
  std::map<pid_t, Thread> threads_;
  std::vector<pid_t> entry_order_;  // threads with an unlogged syscall entry, in entry order
  pid_t running_ = -1;
  pid_t last_scheduled_ = -1;
  pid_t leader_ = -1;
  bool done_ = false;
  int exit_status_ = 0;
  const volatile int* stop_flag_ = nullptr;
  bool freezing_ = false;
  std::chrono::milliseconds flush_interval_{0};
  std::chrono::steady_clock::time_point last_flush_{};
  bool unflushed_ = false;
  pid_t ignored_child_ = 0;
  std::optional<tracee::VdsoPatch> vdso_;
  std::chrono::milliseconds slice_{10};
  std::chrono::milliseconds spin_limit_{5000};
  std::chrono::steady_clock::time_point run_since_{};   // the running thread's turn began
  std::chrono::steady_clock::time_point next_check_{};  // when it is checked for a spin-wait
  std::chrono::milliseconds backoff_{10};
  static constexpr std::chrono::milliseconds kMinSlice{1};
  static constexpr std::chrono::milliseconds kInterruptPatience{50};
  bool buffer_on_ = false;
  RecordStats stats_;
};

}  // namespace relive::record
