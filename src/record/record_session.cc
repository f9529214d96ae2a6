#include "record/record_session.h"

#include <linux/sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "common/check.h"
#include "common/logging.h"
#include "common/process_tree.h"
#include "record/signal_boundary.h"
#include "tracee/breakpoint.h"
#include "tracee/fork.h"
#include "tracee/inject.h"
#include "tracee/process_setup.h"
#include "tracee/rdtsc.h"
#include "tracee/signals.h"
#include "tracee/syscall_buffer.h"
#include "tracee/syscall_dispatch.h"
#include "tracee/syscall_table.h"
#include "tracee/thread_state.h"
#include "tracee/tracer_tsc.h"

namespace relive::record {

using tracee::Policy;
using tracee::Stop;

RecordSession::RecordSession(Mode mode, EventSink* sink, SyscallCapture* capture)
    : mode_(mode), sink_(sink), capture_(capture) {}

void RecordSession::add_initial_thread(pid_t tid, bool leader) {
  Thread t{tracee::Task(tid)};
  t.state = State::kReady;
  t.at_syscall_exit = true;
  t.dispatch_on = mode_ == Mode::kDispatch;
  // The threads of one process share its patched syscall sites.
  auto first = threads_.find(leader_);
  t.sites = !leader && first != threads_.end()
                ? first->second.sites
                : std::make_shared<tracee::SitePatcher>(tracee::kTrampolineSyscallInsn);
  threads_.emplace(tid, std::move(t));
  if (leader) leader_ = tid;
  stats_.threads = threads_.size();
}

RecordSession::Thread& RecordSession::thread(pid_t tid) {
  auto it = threads_.find(tid);
  if (it == threads_.end()) {
    // A new thread's first stop can arrive before its parent's clone event.
    it = threads_.emplace(tid, Thread{tracee::Task(tid)}).first;
  }
  return it->second;
}

Result<int> RecordSession::run() {
  while (!done_) {
    Status st = step();
    if (!st.ok()) return fail(st);
  }
  return exit_status_;
}

bool RecordSession::freeze_requested() const {
  return stop_flag_ != nullptr && *stop_flag_ == kFreeze && attached();
}

// Threads blocked in the kernel are interrupted: each comes back with a result (recorded as
// usual) or with the syscall to be restarted (frozen there, see on_exit).
void RecordSession::begin_freeze() {
  freezing_ = true;
  for (auto& [tid, t] : threads_) {
    if (t.state == State::kInSyscall || t.state == State::kInUntracedSyscall)
      ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
  }
}

// Ends the recording with `t` stopped for good. At a syscall-entry stop the syscall is skipped
// and the thread rewound onto its `syscall` instruction (rax = the number again), so it issues
// the call anew when continued; at the exit of an interrupted call the kernel's own restart does
// the same once the SIGSTOP is delivered.
Status RecordSession::freeze(Thread& t, bool rewind_entry) {
  trace::DetachEvent detach;
  if (rewind_entry) detach.parked_tid = t.task.tid();
  RELIVE_RETURN_IF_ERROR(emit_for(0, detach));
  // Lifting dispatch at an entry stop rewinds the thread onto its call as well.
  bool lifted = t.dispatch_on;
  disable_dispatch(t, rewind_entry ? tracee::Injector::At::kEntry : tracee::Injector::At::kExit);
  if (rewind_entry && !lifted) {
    tracee::Regs r = t.task.regs();
    r.rax = r.orig_rax;
    r.orig_rax = static_cast<uint64_t>(-1);
    r.rip -= 2;
    t.task.set_regs(r);
  }
  pid_t tid = t.task.tid();
  std::deque<Deferred> deferred = std::move(t.deferred);
  t.state = State::kReady;  // stopped here, not to be interrupted again
  stop_all();
  unpatch_vdso();
  if (::ptrace(PTRACE_DETACH, tid, nullptr, SIGSTOP) != 0) return PosixError("detach", errno);
  // Signals the tracer held for a syscall boundary are the process's: it gets them back.
  for (const Deferred& d : deferred) ::kill(tid, d.signo);
  threads_.erase(tid);
  detach_all();  // any other thread (attached mode records one)
  done_ = true;
  return Status::Ok();
}

Status RecordSession::maybe_flush() {
  if (flush_interval_.count() == 0 || !unflushed_) return Status::Ok();
  auto now = tracee::kernel_steady_now();
  if (now - last_flush_ < flush_interval_) return Status::Ok();
  last_flush_ = now;
  unflushed_ = false;
  return sink_->flush();
}

// Logs the calls the running thread `t` (stopped) made through the fast path since it last
// stopped. Stopped outside the fast trampolines, it gets an empty buffer, with room again unless
// it should stop soon; stopped inside one (tracee/syscall_buffer.h), only `logged` moves.
Status RecordSession::drain_buffer(Thread& t) {
  tracee::SyscallBufferHeader h;
  auto calls = tracee::read_syscall_buffer(t.task, &h);
  if (!calls.ok())
    return Status::Corruption(fmt::format("the syscall buffer of thread {}: {}", t.task.tid(),
                                          calls.status().to_string()));
  pid_t tid = t.task.tid();
  bool none = calls->empty();
  for (const trace::SyscallEvent& ev : capture_->from_buffer(tid, std::move(*calls))) {
    ++stats_.syscalls;
    ++stats_.buffered;
    RELIVE_RETURN_IF_ERROR(emit_for(tid, ev));
  }
  uint64_t room = wants_turn_back(t) ? 0 : tracee::kBufferCapacity;
  if (h.next == tracee::kFirstEntryAddr && h.logged == tracee::kFirstEntryAddr && h.room == room)
    return Status::Ok();
  if (!tracee::in_fast_trampoline(t.task.regs().rip))
    return tracee::reset_syscall_buffer(t.task, room);
  if (!none) RELIVE_RETURN_IF_ERROR(tracee::mark_syscall_buffer_logged(t.task, h.next));
  return room == 0 ? tracee::stop_syscall_buffer(t.task) : Status::Ok();
}

// The fast path of `t`'s process takes no more calls until its next drain: the thread stops at
// its next clock call (and another thread or a held signal gets its turn there).
Status RecordSession::hold_buffer(const Thread& t) {
  if (!buffer_on_) return Status::Ok();
  return tracee::stop_syscall_buffer(t.task);
}

Status RecordSession::step() {
  if (freeze_requested() && !freezing_) begin_freeze();
  if (stop_flag_ != nullptr && *stop_flag_ == kDetach && attached()) {
    // What the running thread's fast path did before the interrupt stopped it is in the log.
    stop_all();
    if (buffer_on_ && running_ != -1) RELIVE_RETURN_IF_ERROR(drain_buffer(thread(running_)));
    RELIVE_RETURN_IF_ERROR(emit_for(0, trace::DetachEvent{}));
    detach_all();
    done_ = true;
    return Status::Ok();
  }
  schedule();
  RELIVE_RETURN_IF_ERROR(maybe_flush());
  if (running_ != -1 && !freezing_ && wants_turn_back(thread(running_))) {
    // Another thread waits for the turn: the running one gets a time slice.
    auto now = tracee::kernel_steady_now();
    if (now >= next_check_) return on_slice_expired();
    auto left = std::chrono::ceil<std::chrono::milliseconds>(next_check_ - now);
    auto waited = tracee::wait_stop_for(-1, left, stop_flag_);
    if (!waited.ok() && waited.status().code() == Status::Code::kAborted) return Status::Ok();
    RELIVE_ASSIGN_OR_RETURN(auto got, std::move(waited));
    if (!got) return on_slice_expired();
    return dispatch(got->first, got->second);
  }
  auto waited = tracee::wait_stop(-1, stop_flag_);
  if (!waited.ok() && waited.status().code() == Status::Code::kAborted) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(auto got, std::move(waited));
  return dispatch(got.first, got.second);
}

Status RecordSession::dispatch(pid_t tid, const Stop& stop) {
  if (stop.kind == Stop::Kind::kExited) return on_thread_gone(tid, stop.status);
  Thread& t = thread(tid);
  // What the running thread's fast path did since it last stopped comes before this stop.
  if (buffer_on_ && tid == running_) RELIVE_RETURN_IF_ERROR(drain_buffer(t));
  if (mode_ == Mode::kDispatch && (t.reissuing || stop.kind == Stop::Kind::kSignal))
    if (std::optional<Status> done = on_dispatched(t, stop)) return *done;
  if (stop.kind == Stop::Kind::kGroupStop && t.interrupt_pending) {
    t.interrupt_pending = false;
    if (t.state == State::kRunning && running_ == tid) return on_interrupted(t);
    return continue_thread(t);  // the interrupt met the thread elsewhere (a syscall): go on
  }
  switch (stop.kind) {
    case Stop::Kind::kSeccomp:
    case Stop::Kind::kSyscallEntry:
      return on_entry(t, stop);
    case Stop::Kind::kSyscallExit:
      return on_exit(t, stop);
    case Stop::Kind::kSignal:
      return on_signal(t, stop.signo);
    case Stop::Kind::kClone:
      return on_clone_event(t);
    case Stop::Kind::kGroupStop:
      if (t.state == State::kNew) {
        // Dispatch is not inherited: a new thread or process gets it before it runs.
        if (mode_ == Mode::kDispatch && !t.dispatch_on)
          RELIVE_RETURN_IF_ERROR(enable_dispatch(t, tracee::Injector::At::kElsewhere));
        t.initial_stop_seen = true;
        maybe_start(t);
        return Status::Ok();
      }
      if (t.restart_result) return continue_thread(t);
      return t.state == State::kRunning ? resume(t) : t.task.syscall();
    case Stop::Kind::kExec:
      return t.task.syscall();  // on to the execve's exit stop, where the new image is set up
    default:
      return Status::IoError(std::string("unexpected ptrace stop: ") +
                             tracee::stop_kind_name(stop.kind));
  }
}

// One thread runs user code at a time. When none does, the next ready thread (round robin
// after the last one scheduled) goes; threads blocked in syscalls do not hold the turn.
void RecordSession::schedule() {
  if (running_ != -1) return;
  auto pick = threads_.upper_bound(last_scheduled_);
  for (size_t i = 0; i < threads_.size(); ++i, ++pick) {
    if (pick == threads_.end()) pick = threads_.begin();
    if (pick->second.state != State::kReady) continue;
    Status st = resume(pick->second);
    if (!st.ok()) spdlog::warn("resume {}: {}", pick->first, st.to_string());
    last_scheduled_ = pick->first;
    run_since_ = tracee::kernel_steady_now();
    backoff_ = pick->second.slice;
    next_check_ = run_since_ + backoff_;
    return;
  }
}

Status RecordSession::resume(Thread& t) {
  if (t.at_syscall_exit && buffer_on_) RELIVE_RETURN_IF_ERROR(leave_syscall_site(t));
  int sig = std::exchange(t.deliver_on_resume, 0);
  if (sig == 0 && t.at_syscall_exit && !t.expect_boundary_signal && !t.deferred.empty()) {
    // Deliver a deferred asynchronous signal here, at a syscall boundary the replay can find.
    t.injecting = t.deferred.front();
    t.deferred.pop_front();
    t.expect_boundary_signal = true;
    sig = t.injecting.signo;
  }
  t.at_syscall_exit = false;
  if (wants_turn_back(t)) RELIVE_RETURN_IF_ERROR(hold_buffer(t));
  t.state = State::kRunning;
  running_ = t.task.tid();
  return continue_thread(t, sig);
}

// `t`, stopped at a syscall exit, is about to run on from there, the one thread in user space.
// Right after a patched site's `syscall` is the middle of its jump now: it goes on from the
// stub's tail instead (the same `cmp`, the same way back), before any signal frame can save that
// address. A site whose traced fast-path call this was is patched here (and logged): no thread of
// the process runs user code, and every other one stopped or blocked at that site comes through
// here or through on_exit before it does.
Status RecordSession::leave_syscall_site(Thread& t) {
  bool candidate = std::exchange(t.site_candidate, false);
  if (!t.sites || (t.sites->empty() && !candidate)) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(tracee::Regs r, t.task.try_regs());
  if (std::optional<uint64_t> tail = t.sites->redirect(r.rip)) {
    r.rip = *tail;
    t.task.set_regs(r);
    return Status::Ok();
  }
  // Not where a signal is delivered on the way out (the replay expects the thread at that exit
  // for it, and the kernel's own would be taken by the stub page's injected mmap): the site's
  // next traced call tries again.
  if (!candidate || t.expect_boundary_signal || !t.deferred.empty() || t.deliver_on_resume != 0)
    return Status::Ok();
  std::vector<int> held;
  RELIVE_ASSIGN_OR_RETURN(std::optional<tracee::SitePatch> patch,
                          t.sites->patch_at_exit(t.task, &held));
  for (int sig : held) t.deferred.push_back({sig, {}});
  if (!patch) return Status::Ok();
  ++stats_.sites_patched;
  pid_t tid = t.task.tid();
  return emit_for(
      tid, trace::SitePatchEvent{tid, patch->site, patch->stub, patch->stub_page, patch->new_page});
}

// Whether the running thread `t` is checked for a spin-wait after its slice: another thread waits
// for the turn, or a signal held for `t` waits for a point where replay can deliver it.
bool RecordSession::wants_turn_back(const Thread& t) const {
  return others_ready(t.task.tid()) || !t.deferred.empty();
}

bool RecordSession::others_ready(pid_t tid) const {
  return std::any_of(threads_.begin(), threads_.end(), [&](const auto& kv) {
    return kv.first != tid && kv.second.state == State::kReady;
  });
}

// Dispatch mode: a signal stop that is a call dispatch stopped (SIGSYS, SYS_USER_DISPATCH) is
// that call's entry: it is made again from an instruction dispatch lets through, to its entry
// stop (three stops a traced call instead of two), where it is set to return to the program.
// Until that entry stop the thread must not run user code (it stands on relive's instruction): an
// interrupt is absorbed, another signal held.
// Nothing: a stop to handle as usual.
std::optional<Status> RecordSession::on_dispatched(Thread& t, const Stop& stop) {
  if (t.reissuing) {
    switch (stop.kind) {
      case Stop::Kind::kSyscallEntry:
        t.reissuing = false;
        RELIVE_RETURN_IF_ERROR(tracee::return_reissued_syscall(t.task, t.reissue_return));
        return on_entry(t, stop);
      case Stop::Kind::kGroupStop:
        t.interrupt_pending = false;
        return t.task.syscall();
      case Stop::Kind::kSignal: {
        std::string info;
        RELIVE_RETURN_IF_ERROR(t.task.get_siginfo(&info));
        hold_signal(t, stop.signo, std::move(info));
        return t.task.syscall();
      }
      default:
        t.reissuing = false;  // killed on the way (an exit event)
        return std::nullopt;
    }
  }
  if (stop.signo == SIGSYS) {
    std::string info;
    RELIVE_RETURN_IF_ERROR(t.task.get_siginfo(&info));
    if (tracee::is_dispatched_syscall(info)) {
      RELIVE_ASSIGN_OR_RETURN(t.reissue_return, tracee::reissue_dispatched_syscall(t.task));
      t.reissuing = true;
      return t.task.syscall();
    }
  }
  return std::nullopt;
}

Status RecordSession::enable_dispatch(Thread& t, tracee::Injector::At at) {
  std::vector<int> held;
  RELIVE_RETURN_IF_ERROR(
      tracee::enable_syscall_dispatch(t.task, at, tracee::kTrampolineSyscallInsn, &held));
  t.dispatch_on = true;
  for (int sig : held) hold_signal(t, sig, {});
  return Status::Ok();
}

// Best effort (the process is being let go): a thread that cannot take the prctl still has its
// selector set to "allow", so its calls go through.
void RecordSession::disable_dispatch(Thread& t, tracee::Injector::At at) {
  if (!t.dispatch_on) return;
  t.dispatch_on = false;
  std::vector<int> held;
  Status s = tracee::disable_syscall_dispatch(t.task, at, tracee::kTrampolineSyscallInsn, &held);
  if (!s.ok())
    spdlog::warn("turning syscall user dispatch off in {}: {}", t.task.tid(), s.to_string());
  for (int sig : held) t.deferred.push_back({sig, {}});
}

Status RecordSession::continue_thread(const Thread& t, int sig) const {
  return mode_ == Mode::kAllSyscalls ? t.task.syscall(sig) : t.task.cont(sig);
}

// The running thread's slice is over while others wait: interrupt it to look at what it does.
Status RecordSession::on_slice_expired() {
  Thread& t = thread(running_);
  auto now = tracee::kernel_steady_now();
  next_check_ = now + backoff_;
  // An interrupt whose stop has not come is sent again: one that met the thread at a ptrace
  // stop of another kind (the breakpoint of a spin check) can be absorbed without a stop of its
  // own. A stop too many is harmless (dispatch resumes it).
  if (t.interrupt_pending && now - t.interrupt_sent < kInterruptPatience) return Status::Ok();
  RELIVE_RETURN_IF_ERROR(hold_buffer(t));  // a clock loop then stops at its next call
  if (::ptrace(PTRACE_INTERRUPT, t.task.tid(), nullptr, nullptr) != 0)
    return PosixError("PTRACE_INTERRUPT", errno);
  t.interrupt_pending = true;
  t.interrupt_sent = now;
  return Status::Ok();
}

// Threads blocked in syscalls must not be halfway through one (a completed call's kernel writes
// visible in memory before its exit stop is in the log): each is asleep in the kernel.
bool RecordSession::blocked_threads_settled() const {
  for (const auto& [tid, t] : threads_) {
    if (t.state != State::kInSyscall && t.state != State::kInUntracedSyscall) continue;
    if (task_state(tid) != 'S') return false;
  }
  return true;
}

// The running thread `t` is stopped in user space by a preemption interrupt. If one pass of the
// loop it is in changes nothing, it is waiting for another thread: it is preempted here.
Status RecordSession::on_interrupted(Thread& t) {
  pid_t tid = t.task.tid();
  if (!wants_turn_back(t)) return continue_thread(t);
  // Never inside a fast trampoline: replay takes the traced path there and would not find it.
  if (buffer_on_ && tracee::in_fast_trampoline(t.task.regs().rip)) return keep_running(t, nullptr);
  tracee::ResumeHow how =
      mode_ == Mode::kAllSyscalls ? tracee::ResumeHow::kSyscall : tracee::ResumeHow::kCont;
  // One pass of the loop (back to the interrupted instruction) must leave the registers as they
  // were; only then is the memory compared, over a second pass.
  tracee::Regs before = t.task.regs();
  uint64_t before_hash = 0;
  for (int pass = 0; pass < 2; ++pass) {
    RELIVE_ASSIGN_OR_RETURN(tracee::RunToResult r, tracee::run_to(t.task, before.rip, how, slice_));
    if (!r.reached) {
      // It left the loop (a syscall, a signal, an rdtsc...) or runs on elsewhere: as usual.
      if (r.interrupted && r.other.kind != Stop::Kind::kGroupStop) t.interrupt_pending = true;
      if (r.interrupted && r.other.kind == Stop::Kind::kGroupStop)
        return keep_running(t, nullptr);  // a long computation, not a spin-wait
      return dispatch(tid, r.other);
    }
    tracee::Regs after = t.task.regs();
    if (!tracee::same_regs(before, after))
      return keep_running(t, "changes its registers on every pass of its loop");
    RELIVE_ASSIGN_OR_RETURN(uint64_t h, tracee::state_hash(t.task));
    if (pass == 1 && h != before_hash)
      return keep_running(t, "changes memory on every pass of its loop");
    before = after;
    before_hash = h;
  }
  if (!blocked_threads_settled()) return keep_running(t, nullptr);
  const tracee::Regs& after = before;
  uint64_t after_hash = before_hash;
  trace::PreemptEvent ev{tid, std::string(reinterpret_cast<const char*>(&after), sizeof after),
                         after_hash};
  ++stats_.preemptions;
  t.slice = std::max(kMinSlice, t.slice / 4);
  RELIVE_RETURN_IF_ERROR(emit_for(tid, ev));
  if (!t.deferred.empty()) {
    // A signal held for this thread is delivered here, a point replay finds; the thread runs on
    // (into the handler, which usually ends the wait).
    Deferred d = std::move(t.deferred.front());
    t.deferred.pop_front();
    // A signal held without its siginfo (one that arrived during process set-up) gets one of its
    // own here: the stop's siginfo is the SIGTRAP's, and the kernel would otherwise make up one
    // naming this tracer's pid, which replay could not reproduce.
    std::string info = d.siginfo;
    if (info.empty()) {
      siginfo_t si{};
      si.si_signo = d.signo;
      si.si_code = SI_KERNEL;
      info.assign(reinterpret_cast<const char*>(&si), sizeof si);
    }
    RELIVE_RETURN_IF_ERROR(t.task.set_siginfo(info));
    ++stats_.signals;
    RELIVE_RETURN_IF_ERROR(emit_for(tid, trace::SignalEvent{tid, d.signo, info}));
    run_since_ = tracee::kernel_steady_now();
    backoff_ = slice_;
    next_check_ = run_since_ + slice_;
    return continue_thread(t, d.signo);
  }
  t.state = State::kReady;
  t.at_syscall_exit = false;
  running_ = -1;
  return Status::Ok();
}

// `t` stays the running thread, checked again later. Looping (`why`) past the spin limit with
// others still waiting, the recording ends: it cannot be preempted at a point replay would find.
Status RecordSession::keep_running(Thread& t, const char* why) {
  auto now = tracee::kernel_steady_now();
  // A signal waiting for a compute loop is not a hang (it waits for the next syscall, as it
  // always has); only other threads kept from running are.
  if (why != nullptr && others_ready(t.task.tid()) && spin_limit_.count() > 0 &&
      now - run_since_ >= spin_limit_) {
    return Status::Unsupported(fmt::format(
        "thread {} ran {} ms in user space without a system call (at ip {:#x}) while {}, and it "
        "{}: without performance counters relive cannot preempt it at a point a replay would "
        "find",
        t.task.tid(),
        std::chrono::duration_cast<std::chrono::milliseconds>(now - run_since_).count(),
        t.task.regs().rip, "other threads waited for their turn", why));
  }
  t.slice = std::min(slice_, t.slice * 2);
  backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, std::chrono::milliseconds(1000));
  next_check_ = now + backoff_;
  return continue_thread(t);
}

Status RecordSession::on_entry(Thread& t, const Stop& stop) {
  if (t.restart_result) {
    // The kernel restarted the call (restart_syscall stands for the original one): it goes on
    // as the same call, its entry already where it was in the log.
    t.restart_result.reset();
    if (stop.nr != SYS_restart_syscall) t.args = stop.args;
    RELIVE_RETURN_IF_ERROR(t.task.syscall());
    // A freeze that began meanwhile interrupted the call before it restarted: interrupt it again
    // (its exit then comes back with a restart code, and the thread is frozen there).
    if (freezing_) ::ptrace(PTRACE_INTERRUPT, t.task.tid(), nullptr, nullptr);
    return Status::Ok();
  }
  t.nr = stop.nr;
  t.args = stop.args;
  uint64_t clone3_flags = 0;
  if (t.nr == SYS_clone3) RELIVE_RETURN_IF_ERROR(t.task.read_mem(t.args[0], &clone3_flags, 8));
  tracee::Decision d = tracee::decide(t.nr, t.args, clone3_flags);
  // A process attached to registered rseq before it was traced: glibc aborts a new thread whose
  // registration fails, so in an attached process rseq runs (and runs again at replay).
  if (t.nr == SYS_rseq && attached()) d.policy = Policy::kAllow;
  // Where the kernel puts a new mapping of a restored process is its own choice: logged.
  if (attached() && tracee::kernel_places(t.nr, t.args)) d.policy = Policy::kNative;
  t.policy = d.policy;
  if (mode_ == Mode::kDispatch && tracee::sets_syscall_dispatch(t.nr, t.args)) {
    d.policy = Policy::kUnsupported;
    d.why =
        "PR_SET_SYSCALL_USER_DISPATCH: the program sets up syscall user dispatch of its "
        "own, which would replace the one this attached recording stops its calls with";
  }
  if (freezing_ && d.policy != Policy::kAllow && d.policy != Policy::kDenyNosys)
    return freeze(t, /*rewind_entry=*/true);
  switch (d.policy) {
    case Policy::kUnsupported: {
      // Stopped at this entry: let go (attached), it makes the call when it runs on.
      t.state = State::kReady;
      t.stopped_at_entry = true;
      const char* name = tracee::syscall_name(t.nr);
      return Status::Unsupported(
          fmt::format("{} in thread {}: {}", name ? name : "syscall", t.task.tid(), d.why));
    }
    case Policy::kAllow:  // only seen when every syscall stops (attached mode)
      t.state = State::kInUntracedSyscall;
      return t.task.syscall();
    case Policy::kDenyNosys: {
      tracee::Regs r = t.task.regs();
      r.orig_rax = static_cast<uint64_t>(-1);
      t.task.set_regs(r);
      t.state = State::kInUntracedSyscall;
      return t.task.syscall();
    }
    case Policy::kExit:
      return on_exit_syscall(t, false);
    case Policy::kExitGroup:
      return on_exit_syscall(t, true);
    default:
      break;
  }
  if (d.policy == Policy::kFork) {
    tracee::Regs r = t.task.regs();
    RELIVE_RETURN_IF_ERROR(tracee::convert_vfork_to_fork(t.task, &r));
    t.task.set_regs(r);
  }
  if (d.policy == Policy::kExec && other_threads_in_process(t.task.tid()))
    return Status::Unsupported("execve in a multi-threaded process");
  if (must_refuse_kernel_copy(t)) {
    tracee::Regs r = t.task.regs();
    r.orig_rax = static_cast<uint64_t>(-1);
    t.task.set_regs(r);
    t.forced = true;
    t.forced_result = -EINVAL;
  }
  if (tracee::changes_fd_table(t.nr)) capture_->fd_table_may_change();
  // The syscall may block (futex, read on a pipe...): let it run in the kernel and give the
  // user-space turn to another thread. Its entry is logged only if another thread's event
  // comes first.
  t.entry_unlogged = true;
  entry_order_.push_back(t.task.tid());
  t.state = State::kInSyscall;
  if (running_ == t.task.tid()) running_ = -1;
  return t.task.syscall();
}

// copy_file_range, sendfile, splice and tee move bytes inside the kernel; when they write to
// the recorder's own stdout/stderr the replay could not reproduce that output. Refusing them
// with EINVAL makes programs (cat, cp...) fall back to read/write, which are recorded.
bool RecordSession::must_refuse_kernel_copy(Thread& t) {
  int out_fd = -1;
  switch (t.nr) {
    case SYS_copy_file_range:
    case SYS_splice:
      out_fd = static_cast<int>(t.args[2]);
      break;
    case SYS_sendfile:
      out_fd = static_cast<int>(t.args[0]);
      break;
    case SYS_tee:
      out_fd = static_cast<int>(t.args[1]);
      break;
    default:
      return false;
  }
  return capture_->is_recorder_output(t.task.tid(), out_fd);
}

Status RecordSession::on_exit(Thread& t, const Stop& stop) {
  if (t.state == State::kInUntracedSyscall) {
    if (t.policy == Policy::kDenyNosys) {
      tracee::Regs r = t.task.regs();
      r.rax = static_cast<uint64_t>(-ENOSYS);
      t.task.set_regs(r);
    }
    t.state = State::kRunning;
    return continue_thread(t);
  }
  int64_t result = stop.rval;
  if (freezing_ && !t.forced && tracee::is_restart_code(result)) {
    return freeze(t, /*rewind_entry=*/false);  // interrupted by begin_freeze: restarts later
  }
  if (!t.forced && tracee::is_restart_code(result)) {
    // Something woke the call (a signal, maybe one another thread of the process will take; a
    // preemption interrupt). The kernel restarts it by itself unless a handler runs here first:
    // the thread's next stop tells which (on_entry: restarted; on_signal: delivered).
    t.restart_result = result;
    return continue_thread(t);
  }
  if (t.forced) {
    tracee::Regs r = t.task.regs();
    r.rax = static_cast<uint64_t>(t.forced_result);
    t.task.set_regs(r);
    result = t.forced_result;
    t.forced = false;
  }
  RELIVE_ASSIGN_OR_RETURN(trace::SyscallEvent ev,
                          capture_->capture(t.task, t.nr, t.args, result, t.policy));
  bool creates = (t.policy == Policy::kClone || t.policy == Policy::kFork) && result > 0;
  if (creates) RELIVE_RETURN_IF_ERROR(add_clone_fixups(t, &ev));
  if (t.policy == Policy::kExec) RELIVE_RETURN_IF_ERROR(capture_exec(t, &ev));
  ++stats_.syscalls;
  RELIVE_RETURN_IF_ERROR(emit_for(t.task.tid(), ev));
  if (creates) {
    Thread& child = thread(static_cast<pid_t>(result));
    // A thread shares its creator's address space; a process starts with a copy of it.
    child.sites =
        t.policy == Policy::kClone ? t.sites : std::make_shared<tracee::SitePatcher>(*t.sites);
    child.clone_logged = true;
    maybe_start(child);
  }
  t.state = State::kReady;
  t.at_syscall_exit = true;
  t.last_result = result;
  t.site_candidate = buffer_on_ && tracee::fast_path_site_call(t.nr, t.args);
  return check_boundary_signal(t);
}

// A signal that is pending and unblocked at a syscall exit is delivered on the way back to user
// space, before any user instruction: a boundary the replay reproduces exactly.
Status RecordSession::check_boundary_signal(Thread& t) {
  if (t.expect_boundary_signal) return Status::Ok();
  if (!may_have_raised_signal(t.nr, t.last_result)) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(bool pending, signal_deliverable(t.task.tid()));
  if (pending) t.expect_boundary_signal = true;
  return Status::Ok();
}

// `t` stopped to take signal `signo` on its way out of a syscall that returned a restart code:
// the call ended there (logged with that code; replay injects the signal at its exit so that
// the kernel's restart logic acts the same) and the signal is delivered when `t` next runs.
Status RecordSession::on_signal_after_restart_code(Thread& t, int signo) {
  int64_t result = *t.restart_result;
  t.restart_result.reset();
  RELIVE_ASSIGN_OR_RETURN(trace::SyscallEvent ev,
                          capture_->capture(t.task, t.nr, t.args, result, t.policy));
  ++stats_.syscalls;
  RELIVE_RETURN_IF_ERROR(emit_for(t.task.tid(), ev));
  std::string info;
  RELIVE_RETURN_IF_ERROR(t.task.get_siginfo(&info));
  ++stats_.signals;
  RELIVE_RETURN_IF_ERROR(emit_for(t.task.tid(), trace::SignalEvent{t.task.tid(), signo, info}));
  t.state = State::kReady;
  t.at_syscall_exit = false;
  t.last_result = result;
  t.deliver_on_resume = signo;
  return Status::Ok();
}

Status RecordSession::on_signal(Thread& t, int signo) {
  if (t.restart_result && !(signo == SIGCHLD && ignored_child_ != 0 &&
                            tracee::sigchld_sender(t.task) == ignored_child_))
    return on_signal_after_restart_code(t, signo);
  if (signo == SIGSEGV) {
    RELIVE_ASSIGN_OR_RETURN(auto tsc, tracee::emulate_rdtsc_if_trapped(t.task));
    if (tsc) {
      ++stats_.rdtsc;
      trace::RdtscEvent ev{t.task.tid(), tsc->tsc, tsc->aux, tsc->rdtscp};
      RELIVE_RETURN_IF_ERROR(emit_for(t.task.tid(), ev));
      return resume(t);
    }
  }
  if (signo == SIGCHLD && ignored_child_ != 0 && tracee::sigchld_sender(t.task) == ignored_child_)
    return continue_thread(t);
  std::string info;
  RELIVE_RETURN_IF_ERROR(t.task.get_siginfo(&info));
  if (t.expect_boundary_signal) {
    t.expect_boundary_signal = false;
    if (t.injecting.signo == signo && !t.injecting.siginfo.empty()) {
      RELIVE_RETURN_IF_ERROR(t.task.set_siginfo(t.injecting.siginfo));
      info = t.injecting.siginfo;
    }
    t.injecting = {0, {}};
    ++stats_.signals;
    RELIVE_RETURN_IF_ERROR(emit_for(t.task.tid(), trace::SignalEvent{t.task.tid(), signo, info}));
    return continue_thread(t, signo);
  }
  if (tracee::is_synchronous_fault(signo, info)) {
    // A fault the program's own instructions raise: it recurs by itself at replay.
    return continue_thread(t, signo);
  }
  // Arrived in the middle of user code, a place replay cannot find without branch counters:
  // hold it and deliver it at this thread's next syscall exit. A standard signal already held is
  // one pending signal, as the kernel keeps it while a signal is blocked: a compute loop that
  // held a 1 ms timer's signals for a second gets one, not a burst of a thousand no native run
  // could see (real-time signals queue, and are all delivered).
  hold_signal(t, signo, std::move(info));
  return resume(t);
}

void RecordSession::hold_signal(Thread& t, int signo, std::string siginfo) {
  if (signo < SIGRTMIN && std::any_of(t.deferred.begin(), t.deferred.end(),
                                      [signo](const Deferred& d) { return d.signo == signo; })) {
    ++stats_.signals_merged;
    return;
  }
  t.deferred.push_back({signo, std::move(siginfo)});
}

// After a successful execve the thread runs a new program: it gets the same preparation as a
// launched one (vDSO patch, scratch page), and the log gets its AT_RANDOM bytes and a saved
// copy of the new executable. A failed execve changed nothing and replays as emulated.
Status RecordSession::capture_exec(Thread& t, trace::SyscallEvent* ev) {
  if (ev->result != 0) {
    ev->mode = trace::SyscallMode::kEmulated;
    return Status::Ok();
  }
  RELIVE_ASSIGN_OR_RETURN(tracee::ProcessSetup setup, tracee::setup_process(t.task, true));
  for (int sig : setup.held_signals) t.deferred.push_back({sig, {}});
  // execve turned dispatch off; the new image gets it again before it runs.
  t.dispatch_on = false;
  if (mode_ == Mode::kDispatch)
    RELIVE_RETURN_IF_ERROR(enable_dispatch(t, tracee::Injector::At::kExit));
  t.sites = std::make_shared<tracee::SitePatcher>(tracee::kTrampolineSyscallInsn);  // a new image
  RELIVE_ASSIGN_OR_RETURN(std::string random, t.task.read_mem(setup.auxv.at_random, 16));
  ev->writes.push_back({setup.auxv.at_random, std::move(random)});
  RELIVE_ASSIGN_OR_RETURN(ev->file,
                          capture_->save_file("/proc/" + std::to_string(t.task.tid()) + "/exe"));
  return Status::Ok();
}

bool RecordSession::other_threads_in_process(pid_t tid) {
  std::error_code ec;
  auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(tid) + "/task", ec);
  return !ec && std::distance(begin(it), end(it)) > 1;
}

// A new thread may run only once its parent's clone is in the log (replay maps its tid from
// there) and it has reached its first stop.
void RecordSession::maybe_start(Thread& t) {
  if (t.state == State::kNew && t.initial_stop_seen && t.clone_logged) t.state = State::kReady;
}

// The kernel wrote the new thread's tid into the parent's and/or child's memory; replay's tid
// differs, so the recorded values are logged as writes to apply after the native clone.
Status RecordSession::add_clone_fixups(const Thread& parent, trace::SyscallEvent* ev) {
  uint64_t flags = parent.args[0], ptid = parent.args[2], ctid = parent.args[3];
  if (parent.nr == SYS_clone3) {
    uint64_t cl[4] = {};  // flags, pidfd, child_tid, parent_tid
    RELIVE_RETURN_IF_ERROR(parent.task.read_mem(parent.args[0], cl, sizeof cl));
    flags = cl[0], ctid = cl[2], ptid = cl[3];
  }
  for (auto [flag, addr] : {std::pair{CLONE_PARENT_SETTID, ptid}, {CLONE_CHILD_SETTID, ctid}}) {
    if (!(flags & static_cast<uint64_t>(flag)) || addr == 0) continue;
    // A new process's CLONE_CHILD_SETTID word is in its own memory: replay writes it there.
    if (flag == CLONE_CHILD_SETTID && parent.policy == Policy::kFork) continue;
    RELIVE_ASSIGN_OR_RETURN(std::string word, parent.task.read_mem(addr, 4));
    ev->writes.push_back({addr, std::move(word)});
  }
  return Status::Ok();
}

Status RecordSession::on_clone_event(Thread& t) {
  pid_t child = static_cast<pid_t>(t.task.event_msg());
  Thread& c = thread(child);
  (void)c;
  ++stats_.threads;
  return t.task.syscall();  // on to the clone's exit stop
}

Status RecordSession::on_exit_syscall(Thread& t, bool group) {
  trace::SyscallEvent ev;
  ev.tid = t.task.tid();
  ev.nr = t.nr;
  ev.args = t.args;
  ev.mode = trace::SyscallMode::kNative;
  ++stats_.syscalls;
  RELIVE_RETURN_IF_ERROR(emit_for(t.task.tid(), ev));
  running_ = -1;
  pid_t tid = t.task.tid();
  RELIVE_RETURN_IF_ERROR(t.task.cont());
  if (group) return Status::Ok();  // every thread now exits; on_thread_gone collects them
  if (tid == leader_ && threads_.size() > 1) {
    t.state = State::kZombie;  // a leader's exit is reported only after its last thread's
    return Status::Ok();
  }
  // Wait for this thread to be gone before anything else runs, so the kernel's clearing of its
  // tid word (what pthread_join waits for) happens at this point of the log, as at replay.
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, tracee::wait_stop(tid));
    if (got.second.kind == Stop::Kind::kExited) return on_thread_gone(tid, got.second.status);
    RELIVE_RETURN_IF_ERROR(tracee::Task(tid).cont());
  }
}

Status RecordSession::on_thread_gone(pid_t tid, int status) {
  threads_.erase(tid);
  entry_order_.erase(std::remove(entry_order_.begin(), entry_order_.end(), tid),
                     entry_order_.end());
  if (running_ == tid) running_ = -1;
  if (tid == leader_) exit_status_ = status;
  if (!threads_.empty()) {
    if (tid != leader_) RELIVE_RETURN_IF_ERROR(emit_for(tid, trace::ThreadExitEvent{tid}));
    return Status::Ok();
  }
  done_ = true;
  RELIVE_RETURN_IF_ERROR(emit_for(tid, trace::ProcessExitEvent{exit_status_}));
  return Status::Ok();
}

// Logs `ev` for thread `tid`. Every syscall entry not yet logged is a user-space run that ended
// earlier and must come first, in the order the runs happened. A thread's own entry is folded
// into its SyscallEvent only when no other entry is pending (the common, single-thread case).
Status RecordSession::emit_for(pid_t tid, const trace::Event& ev) {
  auto pending = [&](pid_t p) {
    auto it = threads_.find(p);
    return it != threads_.end() && it->second.entry_unlogged ? &it->second : nullptr;
  };
  size_t live = 0;
  for (pid_t p : entry_order_) live += pending(p) != nullptr;
  Thread* self = pending(tid);
  bool fold = self != nullptr && live == 1 && std::holds_alternative<trace::SyscallEvent>(ev);
  for (pid_t p : entry_order_) {
    Thread* t = pending(p);
    if (t == nullptr || (fold && p == tid)) continue;
    t->entry_unlogged = false;
    RELIVE_RETURN_IF_ERROR(sink_->emit(trace::SyscallEntryEvent{p, t->nr}));
  }
  entry_order_.clear();
  if (fold) self->entry_unlogged = false;
  unflushed_ = true;
  return sink_->emit(ev);
}

Status RecordSession::fail(Status why) {
  if (attached()) {
    detach_all();
  } else if (leader_ > 0) {
    // Every process, not only the leader: a child may have left its process group (timeout,
    // setsid) or outlived its parent, and a tracee left in a ptrace stop would never exit.
    for (const auto& [tid, t] : threads_) ::kill(tid, SIGKILL);
    while (!threads_.empty()) {
      auto got = tracee::wait_stop(-1);
      if (!got.ok()) break;  // no tracee left
      if (got->second.kind == Stop::Kind::kExited) {
        threads_.erase(got->first);
      } else {
        // One not known yet (a new child's first stop), or one stopped on its way out.
        ::kill(got->first, SIGKILL);
        (void)::ptrace(PTRACE_CONT, got->first, nullptr, nullptr);
      }
    }
  }
  return why;
}

// Every thread that may be running user code or sitting in the kernel comes to a ptrace stop.
void RecordSession::stop_all() {
  for (auto& [tid, t] : threads_) {
    if (t.state == State::kRunning || t.state == State::kInSyscall ||
        t.state == State::kInUntracedSyscall) {
      ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
      auto got = tracee::wait_stop(tid);
      t.stopped_at_entry = got.ok() && got->second.kind == Stop::Kind::kSyscallEntry;
      if (std::exchange(t.reissuing, false) && got.ok() &&
          got->second.kind != Stop::Kind::kExited) {
        // A call made again from relive's instruction returns where the program made it, or,
        // not entered yet, is made again from the program's own when the thread runs on.
        Status back = t.stopped_at_entry
                          ? tracee::return_reissued_syscall(t.task, t.reissue_return)
                          : tracee::cancel_reissued_syscall(t.task, t.reissue_return);
        if (!back.ok()) spdlog::warn("thread {}: {}", tid, back.to_string());
      }
      t.state = State::kReady;
    }
  }
}

// The threads are stopped; no thread can be inside the jumps being rewritten (vdso.h).
void RecordSession::unpatch_vdso() {
  if (!vdso_ || leader_ <= 0) return;
  Status s = tracee::unpatch_vdso(tracee::Task(leader_), *vdso_);
  if (!s.ok()) spdlog::warn("restoring the vDSO of {}: {}", leader_, s.to_string());
  vdso_.reset();
}

void RecordSession::detach_all() {
  stop_all();
  // The fast path takes no more calls: patched sites make their calls themselves from now on.
  for (auto& [tid, t] : threads_)
    if (buffer_on_) (void)tracee::stop_syscall_buffer(t.task);
  for (auto& [tid, t] : threads_)
    disable_dispatch(
        t, t.stopped_at_entry ? tracee::Injector::At::kEntry : tracee::Injector::At::kElsewhere);
  unpatch_vdso();
  for (auto& [tid, t] : threads_) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  threads_.clear();
}

}  // namespace relive::record
