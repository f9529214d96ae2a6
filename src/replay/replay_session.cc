#include "replay/replay_session.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/process_tree.h"
#include "common/scoped_fd.h"
#include "replay/divergence.h"
#include "trace/trace_dir.h"
#include "tracee/breakpoint.h"
#include "tracee/fork.h"
#include "tracee/inject.h"
#include "tracee/out_buffers.h"
#include "tracee/process_setup.h"
#include "tracee/rdtsc.h"
#include "tracee/signals.h"
#include "tracee/syscall_dispatch.h"
#include "tracee/thread_state.h"
#include "tracee/tracer_tsc.h"
#include "tracee/vdso.h"

namespace relive::replay {

using tracee::Stop;

namespace {

int32_t tid_of(const trace::Event& e) {
  return std::visit(
      [](const auto& ev) -> int32_t {
        if constexpr (requires { ev.tid; }) return ev.tid;
        return 0;
      },
      e);
}

constexpr size_t kMaxLookahead = 1 << 20;

// The process (thread group) of thread `tid`; 0 if it is gone.
pid_t tgid_of(pid_t tid) {
  Result<std::string> status = read_file("/proc/" + std::to_string(tid) + "/status");
  if (!status.ok()) return 0;
  size_t at = status->find("\nTgid:");
  return at == std::string::npos ? 0 : static_cast<pid_t>(std::atol(status->c_str() + at + 6));
}

// How long the final exit may go without any stop before the threads left are looked at.
constexpr std::chrono::milliseconds kExitQuiet{2000};

}  // namespace

ReplaySession::ReplaySession(Mode mode, trace::TraceReader* reader, Output out)
    : mode_(mode), reader_(reader), out_(out) {}

void ReplaySession::add_initial_thread(pid_t tid, int32_t recorded_tid, bool leader) {
  Thread t{tracee::Task(tid)};
  t.rec_tid = recorded_tid;
  t.at_exit_stop = true;
  auto first = threads_.find(leader_);
  t.sites = !leader && first != threads_.end()
                ? first->second.sites
                : std::make_shared<tracee::SitePatcher>(tracee::kTrampolineSyscallInsn);
  threads_.emplace(recorded_tid, std::move(t));
  if (leader) leader_ = recorded_tid;
}

Result<std::optional<trace::Event>> ReplaySession::next() {
  ++index_;
  if (!ahead_.empty()) {
    trace::Event e = std::move(ahead_.front());
    ahead_.pop_front();
    return std::optional<trace::Event>(std::move(e));
  }
  return read_event();
}

Result<std::optional<trace::Event>> ReplaySession::read_event(bool wait) {
  for (;;) {
    Result<std::optional<trace::Event>> e = reader_->next();
    bool at_end = e.ok() ? !e->has_value() : reader_->at_partial_segment();
    if (at_end && !wait && wait_for_more_) return std::optional<trace::Event>();
    if (!at_end || !wait_for_more_) return e;
    RELIVE_ASSIGN_OR_RETURN(bool more, wait_for_more_());
    if (!more) return e;
  }
}

pid_t ReplaySession::leader_tid() const {
  auto it = threads_.find(leader_);
  return it == threads_.end() ? 0 : it->second.task.tid();
}

Status ReplaySession::park(const trace::DetachEvent& d) {
  // The thread the recording left at its next syscall; a trace that does not say had one.
  int32_t who = d.parked_tid != 0 ? d.parked_tid : threads_.size() == 1 ? leader_ : 0;
  if (who == 0) return Status::Ok();  // no thread ran past its last event
  auto it = threads_.find(who);
  if (it == threads_.end())
    return Status::NotFound(fmt::format("the replay has no thread {} to park", who));
  Thread& t = it->second;
  return t.parked ? Status::Ok() : run_to_entry(t);
}

// Whether the next event of thread `tid` in the log is a signal delivered at its syscall exit.
Result<bool> ReplaySession::signal_follows(int32_t tid) {
  RELIVE_ASSIGN_OR_RETURN(int signo, signal_that_follows(tid));
  return signo != 0;
}

Result<int> ReplaySession::signal_that_follows(int32_t tid) {
  for (size_t i = 0;; ++i) {
    if (i == ahead_.size()) {
      if (ahead_.size() >= kMaxLookahead) return 0;
      RELIVE_ASSIGN_OR_RETURN(auto e, read_event());
      if (!e) return 0;
      ahead_.push_back(std::move(*e));
    }
    const trace::Event& e = ahead_[i];
    if (std::holds_alternative<trace::ProcessExitEvent>(e) ||
        std::holds_alternative<trace::DetachEvent>(e))
      return 0;
    if (tid_of(e) != tid) continue;
    const auto* sig = std::get_if<trace::SignalEvent>(&e);
    return sig != nullptr ? sig->signo : 0;
  }
}

Result<ReplaySession::Thread*> ReplaySession::thread_of(int32_t rec_tid) {
  auto it = threads_.find(rec_tid);
  if (it == threads_.end())
    return divergence(current_index(), rec_tid, "an event of this thread", "has no such thread");
  return &it->second;
}

Result<int> ReplaySession::run() {
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto e, next());
    if (!e)
      return Status::Corruption(
          "trace ends without the process's exit (was the recording cut short?)");
    Status st;
    if (auto* p = std::get_if<trace::ProcessExitEvent>(&*e)) {
      RELIVE_ASSIGN_OR_RETURN(int status, on_process_exit(*p));
      RELIVE_RETURN_IF_ERROR(expect_log_end("the recorded processes' exit"));
      return status;
    }
    if (const auto* d = std::get_if<trace::DetachEvent>(&*e)) {  // the recording ended here
      if (park_at_detach_) RELIVE_RETURN_IF_ERROR(park(*d));
      RELIVE_RETURN_IF_ERROR(expect_log_end("the recording's detach"));
      handed_over_ = true;
      return 0;
    }
    if (auto* s = std::get_if<trace::SyscallEvent>(&*e)) st = on_syscall(*s);
    if (auto* s = std::get_if<trace::SyscallEntryEvent>(&*e)) st = on_entry(*s);
    if (auto* s = std::get_if<trace::SignalEvent>(&*e)) st = on_signal(*s);
    if (auto* s = std::get_if<trace::RdtscEvent>(&*e)) st = on_rdtsc(*s);
    if (auto* s = std::get_if<trace::PreemptEvent>(&*e)) st = on_preempt(*s);
    if (auto* s = std::get_if<trace::SitePatchEvent>(&*e)) st = on_site_patch(*s);
    if (auto* s = std::get_if<trace::ThreadExitEvent>(&*e)) st = on_thread_exit(*s);
    RELIVE_RETURN_IF_ERROR(st);
  }
}

// The replay is over: every event of the log must have been replayed. An event after the end
// (of a process the replay would otherwise never run to it) is a log this replay cannot honour,
// never a success. Events still to come in a followed, growing log are not waited for.
Status ReplaySession::expect_log_end(const char* end) {
  bool more = !ahead_.empty();
  if (!more && !wait_for_more_) {
    Result<std::optional<trace::Event>> e = reader_->next();
    if (!e.ok()) return e.status();
    more = e->has_value();
  }
  if (!more) return Status::Ok();
  return Status::Corruption(fmt::format(
      "the trace has events after {} (event #{}): they were never replayed", end, index_));
}

Status ReplaySession::go_on(const tracee::Task& task, int sig) const {
  return mode_ == Mode::kAllSyscalls ? task.syscall(sig) : task.cont(sig);
}

// Until the entry stop of a call made again the thread must not run user code (it stands on
// relive's instruction, syscall_dispatch.h): this run's own signals and interrupts are dropped on
// the way.
Result<std::pair<pid_t, Stop>> ReplaySession::wait_for(Thread& t) {
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, tracee::wait_stop(t.task.tid()));
    if (mode_ != Mode::kDispatch) return got;
    const Stop& s = got.second;
    if (t.reissuing) {
      if (s.kind == Stop::Kind::kSignal || s.kind == Stop::Kind::kGroupStop) {
        RELIVE_RETURN_IF_ERROR(t.task.syscall());
        continue;
      }
      t.reissuing = false;
      if (s.kind == Stop::Kind::kSyscallEntry)
        RELIVE_RETURN_IF_ERROR(tracee::return_reissued_syscall(t.task, t.reissue_return));
      return got;
    }
    if (s.kind == Stop::Kind::kSignal && s.signo == SIGSYS) {
      std::string info;
      RELIVE_RETURN_IF_ERROR(t.task.get_siginfo(&info));
      if (tracee::is_dispatched_syscall(info)) {
        RELIVE_ASSIGN_OR_RETURN(t.reissue_return, tracee::reissue_dispatched_syscall(t.task));
        t.reissuing = true;
        RELIVE_RETURN_IF_ERROR(t.task.syscall());
        continue;
      }
    }
    return got;
  }
}

// With the recorder's SIGSYS handler, as the recorded process had it (the program could ask for
// it). This run's own signals that arrive meanwhile are dropped (as run_to_entry drops them).
Status ReplaySession::enable_dispatch(Thread& t, tracee::Injector::At at) {
  std::vector<int> held;
  return tracee::enable_syscall_dispatch(t.task, at, tracee::kTrampolineSyscallInsn, &held);
}

Status ReplaySession::resume(Thread& t) {
  if (t.sites && !t.sites->empty()) {
    // Right after a patched site's `syscall` is the middle of its jump: on from the stub's tail
    // (RecordSession::leave_syscall_site did the same at the same point).
    RELIVE_ASSIGN_OR_RETURN(tracee::Regs r, t.task.try_regs());
    if (std::optional<uint64_t> tail = t.sites->redirect(r.rip)) {
      r.rip = *tail;
      t.task.set_regs(r);
    }
  }
  int sig = t.resume_sig;
  t.resume_sig = 0;
  t.at_exit_stop = false;
  t.parked = false;
  t.preempted = false;
  return go_on(t.task, sig);
}

Status ReplaySession::unexpected_stop(const Thread& t, const std::string& what) {
  return divergence(current_index(), t.rec_tid, "the thread to reach its next recorded event",
                    what);
}

// A new thread's first stop is consumed before it is run anywhere.
Status ReplaySession::start_thread(Thread& t) {
  if (t.started) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(auto first, wait_for(t));
  if (first.second.kind == Stop::Kind::kExited) return unexpected_stop(t, "exited at birth");
  t.started = true;
  // Dispatch is not inherited: a new thread or process gets it before it runs.
  if (mode_ == Mode::kDispatch)
    RELIVE_RETURN_IF_ERROR(enable_dispatch(t, tracee::Injector::At::kElsewhere));
  return Status::Ok();
}

// Runs `t` until it enters a traced syscall (parked there) or traps on rdtsc (SIGSEGV stop).
Status ReplaySession::run_to_entry(Thread& t) {
  RELIVE_RETURN_IF_ERROR(start_thread(t));
  RELIVE_RETURN_IF_ERROR(resume(t));
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, wait_for(t));
    const Stop& s = got.second;
    switch (s.kind) {
      case Stop::Kind::kSeccomp:
      case Stop::Kind::kSyscallEntry: {
        tracee::Regs r = t.task.regs();
        int nr = static_cast<int>(r.orig_rax);
        tracee::SyscallArgs args{r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9};
        tracee::Policy p = tracee::decide(nr, args).policy;
        // As recorded from a checkpoint (an attached process): rseq runs, and the mappings
        // the kernel places are in the log (RecordSession::on_entry).
        if (reader_->header().start == trace::StartKind::kCheckpoint) {
          if (nr == SYS_rseq) p = tracee::Policy::kAllow;
          if (tracee::kernel_places(nr, args)) p = tracee::Policy::kNative;
        }
        if (mode_ != Mode::kSeccomp &&
            (p == tracee::Policy::kAllow || p == tracee::Policy::kDenyNosys)) {
          RELIVE_RETURN_IF_ERROR(skip_untraced(t, p));
          continue;
        }
        t.nr = nr, t.args = args, t.entry_regs = r, t.parked = true;
        RELIVE_ASSIGN_OR_RETURN(bool answered, settle_prefill(t));
        if (!answered) return Status::Ok();
        RELIVE_RETURN_IF_ERROR(resume(t));  // on to the rest of the buffer
        continue;
      }
      case Stop::Kind::kSignal: {
        if (s.signo == SIGSEGV) {
          bool rdtscp = false;
          unsigned char code[3] = {};
          (void)t.task.read_mem(t.task.regs().rip, code, 3);
          rdtscp = code[0] == 0x0f && (code[1] == 0x31 || (code[1] == 0x01 && code[2] == 0xf9));
          if (rdtscp) return settle_prefill(t).status();  // the caller: was one expected?
        }
        // A fault of the program's own recurs as recorded and is delivered. Any other signal
        // comes from this run's world (a terminal resize, a replayed child's SIGCHLD): the
        // recorded ones are injected from the log, so these are dropped.
        std::string info;
        RELIVE_RETURN_IF_ERROR(t.task.get_siginfo(&info));
        int deliver = tracee::is_synchronous_fault(s.signo, info) ? s.signo : 0;
        RELIVE_RETURN_IF_ERROR(go_on(t.task, deliver));
        continue;
      }
      case Stop::Kind::kGroupStop:
        RELIVE_RETURN_IF_ERROR(go_on(t.task));
        continue;
      case Stop::Kind::kSyscallExit:
        // Stopping at every syscall, a skipped (emulated) syscall still reports its exit; the
        // result set at its entry stands.
        if (mode_ != Mode::kAllSyscalls) return unexpected_stop(t, "stopped at a syscall exit");
        RELIVE_RETURN_IF_ERROR(t.task.syscall());
        continue;
      case Stop::Kind::kExited:
        process_gone_ = true;
        return unexpected_stop(t, fmt::format("exited (wait status {:#x})", s.status));
      default:
        return unexpected_stop(t, std::string("stopped at ") + tracee::stop_kind_name(s.kind));
    }
  }
}

// Attached mode stops at every syscall; deterministic ones run for real (rseq is refused).
Status ReplaySession::skip_untraced(Thread& t, tracee::Policy p) {
  if (p == tracee::Policy::kDenyNosys) {
    tracee::Regs r = t.task.regs();
    r.orig_rax = static_cast<uint64_t>(-1);
    t.task.set_regs(r);
  }
  RELIVE_RETURN_IF_ERROR(t.task.syscall());
  RELIVE_ASSIGN_OR_RETURN(auto got, wait_for(t));
  if (got.second.kind != Stop::Kind::kSyscallExit)
    return unexpected_stop(t, "did not complete a deterministic syscall");
  if (p == tracee::Policy::kDenyNosys) {
    tracee::Regs r = t.task.regs();
    r.rax = static_cast<uint64_t>(-ENOSYS);
    t.task.set_regs(r);
  }
  return go_on(t.task);
}

namespace {

// The call the fast path would have logged for `ev`, if a trampoline can return it at replay.
std::optional<tracee::BufferedCall> buffered_call(const trace::SyscallEvent& ev) {
  bool clock_call = tracee::fast_path_clock_call(ev.nr);
  if (ev.mode != trace::SyscallMode::kEmulated ||
      (!clock_call && !tracee::fast_path_site_call(ev.nr, ev.args)) ||
      (ev.writes.size() > 1 && !tracee::fast_path_scattered_call(ev.nr, ev.args)) ||
      !ev.file.empty() || !ev.shared_key.empty())
    return std::nullopt;
  if (ev.data_hash != 0 && clock_call) return std::nullopt;
  tracee::BufferedCall c;
  c.nr = ev.nr;
  c.args = ev.args;
  c.result = ev.result;
  c.continued = ev.continued;
  if (tracee::fast_path_scattered_call(ev.nr, ev.args))  // its parts, as the fast path writes them
    for (const auto& w : ev.writes) c.scattered.emplace_back(w.addr, w.data);
  else if (!ev.writes.empty())
    c.write_addr = ev.writes[0].addr, c.write_data = ev.writes[0].data;
  if (clock_call ? !tracee::replayable_from_buffer(c) : !tracee::replayable_site_call(c))
    return std::nullopt;
  return c;
}

// Whether `e` stops thread `tid` wherever it runs: a syscall it enters traced or an rdtsc.
bool stops_thread(const trace::Event& e, int32_t tid) {
  if (tid_of(e) != tid) return false;
  return std::holds_alternative<trace::SyscallEvent>(e) ||
         std::holds_alternative<trace::SyscallEntryEvent>(e) ||
         std::holds_alternative<trace::RdtscEvent>(e);
}

}  // namespace

// Whether ahead_ has an event at `i`, reading on from the log as far as it goes now (a growing
// log is not waited for).
Result<bool> ReplaySession::read_ahead(size_t i) {
  while (ahead_.size() <= i) {
    RELIVE_ASSIGN_OR_RETURN(auto e, read_event(/*wait=*/false));
    if (!e) return false;
    ahead_.push_back(std::move(*e));
  }
  return true;
}

// The fast path at replay (tracee/syscall_buffer.h): when `ev`, the thread's next event, is a
// clock call a trampoline can return, it and the same calls that follow it in the log go into the
// buffer, provided the thread then comes to a stop the log has next anyway (its traced syscall or
// rdtsc): the thread takes them in order when it next runs, and settle_prefill checks at that
// stop that it took them all. The last call is left to the traced path when what follows would
// not stop the thread (a signal delivered at its exit, another thread's turn, the end).
Result<bool> ReplaySession::prefill(Thread& t, const trace::SyscallEvent& ev) {
  if (!buffer_on_ || !t.started || !t.prefilled.empty()) return false;
  std::optional<tracee::BufferedCall> first = buffered_call(ev);
  if (!first) return false;
  if (t.current_trampolines < 0) {
    Result<bool> current = tracee::has_current_trampolines(t.task);
    t.current_trampolines = current.ok() && *current ? 1 : 0;
  }
  if (t.current_trampolines == 0) return false;
  std::vector<tracee::BufferedCall> calls{std::move(*first)};
  std::vector<WriteCheck> out{WriteCheck{ev.data_hash, ev.stream}};
  uint64_t slots = tracee::buffer_slots(calls.back());
  bool stops = false;
  for (size_t i = 0;; ++i) {
    RELIVE_ASSIGN_OR_RETURN(bool more, read_ahead(i));
    if (!more) break;
    std::optional<tracee::BufferedCall> c;
    const trace::SyscallEvent* s = nullptr;
    if (tid_of(ahead_[i]) == ev.tid)
      if ((s = std::get_if<trace::SyscallEvent>(&ahead_[i])) != nullptr) c = buffered_call(*s);
    if (!c) {
      stops = stops_thread(ahead_[i], ev.tid);
      break;
    }
    if (slots + tracee::buffer_slots(*c) > tracee::kBufferCapacity) {
      stops = true;  // the fast path finds no room for it: a traced call, a stop
      break;
    }
    slots += tracee::buffer_slots(*c);
    calls.push_back(std::move(*c));
    out.push_back(WriteCheck{s->data_hash, s->stream});
  }
  if (!stops) calls.pop_back(), out.pop_back();  // taken traced, it stops the thread
  if (calls.empty()) return false;
  RELIVE_RETURN_IF_ERROR(tracee::prefill_syscall_buffer(t.task, calls));
  t.prefilled_from = current_index();
  for (size_t i = 1; i < calls.size(); ++i) {
    ahead_.pop_front();
    ++index_;
  }
  t.prefilled = std::move(calls);
  t.prefilled_out = std::move(out);
  t.checked_writes = 0;
  return true;
}

// At a stop after a prefill: every prefilled call must have been taken, in order. The thread
// stopped at the next one's very call made without a trampoline (syscall(2): logged at record
// exactly like the vDSO's) is answered here, as a traced emulated call, and goes on (true). Any
// other call, or an rdtsc, where the log has the next prefilled call is the divergence at that
// call's event.
Result<bool> ReplaySession::settle_prefill(Thread& t) {
  if (t.prefilled.empty()) return false;
  std::vector<tracee::BufferedCall> calls = std::move(t.prefilled);
  t.prefilled.clear();
  Result<uint64_t> taken = tracee::syscall_buffer_taken(t.task, calls);
  if (!taken.ok())
    return divergence(t.prefilled_from, t.rec_tid, "the syscall buffer the replay filled",
                      "changed it: " + taken.status().message());
  RELIVE_RETURN_IF_ERROR(check_buffered_writes(t, calls, *taken));
  if (*taken == calls.size()) {
    buffered_ += calls.size() - std::exchange(t.prefill_answered, 0);
    t.prefilled_out.clear();
    return false;
  }
  const tracee::BufferedCall& c = calls[*taken];
  if (t.parked && t.nr == c.nr && t.args == c.args) {
    uint64_t index = t.prefilled_from + *taken;
    const WriteCheck& w = t.prefilled_out[*taken];
    if (w.data_hash != 0 && c.result > 0) {  // a write made traced: its bytes from the program
      RELIVE_ASSIGN_OR_RETURN(std::string data,
                              tracee::written_bytes(t.task, c.nr, c.args, c.result));
      RELIVE_RETURN_IF_ERROR(put_out(t, index, w, c.args[0], data));
    }
    if (c.write_addr != 0)
      RELIVE_RETURN_IF_ERROR(write_logged(t, index, c.write_addr, c.write_data));
    for (const auto& [addr, bytes] : c.scattered)
      RELIVE_RETURN_IF_ERROR(write_logged(t, index, addr, bytes));
    answer_parked(t, c.result);
    RELIVE_RETURN_IF_ERROR(tracee::pass_syscall_buffer_entry(t.task, *taken, calls));
    t.checked_writes = *taken + 1;
    ++t.prefill_answered;
    t.prefilled = std::move(calls);
    return true;
  }
  t.prefill_answered = 0;
  t.prefilled_out.clear();
  return divergence(
      t.prefilled_from + *taken, t.rec_tid, format_call(c.nr, c.args),
      t.parked ? "called " + format_call(t.nr, t.args) : std::string("executed rdtsc"));
}

// The writes among the first `taken` prefilled calls that the fast path answered (the ones not
// answered at a stop before): the bytes the program wrote, which the fast path left in their
// entries, must be the recorded ones, and the recorder's output is reproduced from them.
Status ReplaySession::check_buffered_writes(Thread& t,
                                            const std::vector<tracee::BufferedCall>& calls,
                                            uint64_t taken) {
  uint64_t from = std::min(t.checked_writes, taken);
  bool any = false;
  for (uint64_t i = from; i < taken; ++i) any = any || t.prefilled_out[i].data_hash != 0;
  if (any) {
    RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> written,
                            tracee::replayed_write_bytes(t.task, calls, from, taken));
    for (uint64_t i = from; i < taken; ++i) {
      const WriteCheck& w = t.prefilled_out[i];
      if (w.data_hash == 0 || calls[i].result <= 0) continue;
      RELIVE_RETURN_IF_ERROR(
          put_out(t, t.prefilled_from + i, w, calls[i].args[0], written[i - from]));
    }
  }
  t.checked_writes = taken;
  return Status::Ok();
}

Status ReplaySession::put_out(const Thread& t, uint64_t index, const WriteCheck& w, uint64_t fd,
                              std::string_view data) {
  if (hash64(data) != w.data_hash)
    return divergence(index, t.rec_tid, "the recorded output bytes",
                      fmt::format("wrote {} different bytes to fd {}", data.size(), fd));
  if (w.stream == trace::Stream::kStdout) return write_all(out_.stdout_fd, data);
  if (w.stream == trace::Stream::kStderr) return write_all(out_.stderr_fd, data);
  return Status::Ok();
}

Status ReplaySession::on_entry(const trace::SyscallEntryEvent& ev) {
  RELIVE_ASSIGN_OR_RETURN(Thread * t, thread_of(ev.tid));
  if (!t->parked) RELIVE_RETURN_IF_ERROR(run_to_entry(*t));
  if (!t->parked) return divergence(current_index(), ev.tid, "a syscall", "executed rdtsc");
  if (t->nr != ev.nr)
    return divergence(current_index(), ev.tid, fmt::format("entry of syscall {}", ev.nr),
                      "called " + format_call(t->nr, t->args));
  return Status::Ok();
}

Status ReplaySession::on_syscall(const trace::SyscallEvent& ev) {
  RELIVE_ASSIGN_OR_RETURN(Thread * t, thread_of(ev.tid));
  if (!t->parked) {
    RELIVE_ASSIGN_OR_RETURN(bool in_buffer, prefill(*t, ev));
    if (in_buffer) return Status::Ok();
    RELIVE_RETURN_IF_ERROR(run_to_entry(*t));
  }
  if (!t->parked)
    return divergence(current_index(), ev.tid, format_call(ev.nr, ev.args), "executed rdtsc");
  RELIVE_RETURN_IF_ERROR(check_call(current_index(), ev, t->nr, t->args));
  t->parked = false;
  if (ev.nr == SYS_rt_sigsuspend) return complete_sigsuspend(*t, ev);
  switch (ev.mode) {
    case trace::SyscallMode::kEmulated:
      return complete_emulated(*t, ev);
    case trace::SyscallMode::kMapFile:
      return complete_map_file(*t, ev);
    case trace::SyscallMode::kNative:
      if (ev.nr == SYS_exit || ev.nr == SYS_exit_group) return complete_exit(*t, ev);
      return complete_native(*t, ev);
  }
  return Status::Corruption("unknown syscall mode");
}

Status ReplaySession::write_logged(const Thread& t, uint64_t index, uint64_t addr,
                                   std::string_view data) {
  if (t.task.write_mem(addr, data.data(), data.size()).ok()) return Status::Ok();
  return divergence(index, t.rec_tid, fmt::format("{} bytes writable at {:#x}", data.size(), addr),
                    "has no such memory");
}

void ReplaySession::answer_parked(const Thread& t, int64_t result) {
  tracee::Regs r = t.entry_regs;
  r.orig_rax = static_cast<uint64_t>(-1);  // skip the call...
  r.rax = static_cast<uint64_t>(result);   // ...and return what it returned at record
  t.task.set_regs(r);
}

Status ReplaySession::apply_writes(const Thread& t, const trace::SyscallEvent& ev) {
  for (const trace::MemWrite& w : ev.writes)
    RELIVE_RETURN_IF_ERROR(write_logged(t, current_index(), w.addr, w.data));
  return Status::Ok();
}

Status ReplaySession::reproduce_output(Thread& t, const trace::SyscallEvent& ev) {
  if (ev.data_hash == 0 || ev.result <= 0) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(std::string data,
                          tracee::written_bytes(t.task, ev.nr, ev.args, ev.result));
  return put_out(t, current_index(), WriteCheck{ev.data_hash, ev.stream}, ev.args[0], data);
}

Status ReplaySession::complete_emulated(Thread& t, const trace::SyscallEvent& ev) {
  RELIVE_RETURN_IF_ERROR(reproduce_output(t, ev));
  RELIVE_RETURN_IF_ERROR(apply_writes(t, ev));
  answer_parked(t, ev.result);
  return stop_at_exit_if_signal_follows(t, ev);
}

// rt_sigsuspend installs its own signal mask for the wait, and the kernel puts the thread's mask
// back after the handler (through the mask it saves in the handler's frame): only the real call
// does both. The recorded signal is made pending first (blocked by the thread's mask until the
// call installs its own), so the real call returns at once, as it did when the signal came at
// record; on_signal then lets that pending signal be taken rather than injecting a second one.
Status ReplaySession::complete_sigsuspend(Thread& t, const trace::SyscallEvent& ev) {
  RELIVE_ASSIGN_OR_RETURN(int signo, signal_that_follows(ev.tid));
  if (signo == 0) return complete_emulated(t, ev);  // the recording ended while it waited
  if (::syscall(SYS_tkill, t.task.tid(), signo) != 0)
    return PosixError("tkill " + std::to_string(t.task.tid()), errno);
  RELIVE_RETURN_IF_ERROR(t.task.syscall());
  RELIVE_ASSIGN_OR_RETURN(auto got, wait_for(t));
  if (got.second.kind != Stop::Kind::kSyscallExit)
    return unexpected_stop(t, "did not return from rt_sigsuspend with its signal pending");
  auto rv = static_cast<int64_t>(t.task.regs().rax);
  if (rv != ev.result)
    return divergence(current_index(), ev.tid, format_call(ev.nr, ev.args),
                      fmt::format("rt_sigsuspend returned {} with signal {} pending", rv, signo));
  t.at_exit_stop = true;
  t.queued_sig = signo;
  return Status::Ok();
}

// A signal recorded right after this syscall is injected at its exit stop, with the syscall
// number restored so the kernel's restart logic (-ERESTARTSYS and friends) acts as recorded.
Status ReplaySession::stop_at_exit_if_signal_follows(Thread& t, const trace::SyscallEvent& ev) {
  if (t.at_exit_stop) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(bool follows, signal_follows(ev.tid));
  if (!follows) return Status::Ok();
  RELIVE_RETURN_IF_ERROR(t.task.syscall());
  RELIVE_ASSIGN_OR_RETURN(auto got, wait_for(t));
  if (got.second.kind != Stop::Kind::kSyscallExit)
    return unexpected_stop(t, "did not stop at the syscall exit before a signal");
  tracee::Regs r = t.task.regs();
  r.rax = static_cast<uint64_t>(ev.result);
  r.orig_rax = static_cast<uint64_t>(ev.nr);
  t.task.set_regs(r);
  t.at_exit_stop = true;
  return Status::Ok();
}

Status ReplaySession::complete_native(Thread& t, const trace::SyscallEvent& ev) {
  uint64_t clone3_flags = 0;
  if (ev.nr == SYS_clone3) (void)t.task.read_mem(t.args[0], &clone3_flags, 8);
  tracee::Policy policy = tracee::decide(ev.nr, t.args, clone3_flags).policy;
  if (policy == tracee::Policy::kFork) {  // as at record: vfork runs as fork
    tracee::Regs r = t.entry_regs;
    RELIVE_RETURN_IF_ERROR(tracee::convert_vfork_to_fork(t.task, &r));
    t.task.set_regs(r);
  }
  // A mapping an attached recording let the kernel place (tracee::kernel_places): here too.
  bool pinned = false;
  if (ev.result > 0 && tracee::kernel_places(ev.nr, t.args)) {
    tracee::Regs r = t.task.regs();
    if ((pinned = tracee::pin_placement(ev.nr, static_cast<uint64_t>(ev.result), &r)))
      t.task.set_regs(r);
  }
  RELIVE_RETURN_IF_ERROR(t.task.syscall());
  pid_t new_real = 0;
  bool restarting = false;
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, wait_for(t));
    const Stop& s = got.second;
    if (s.kind == Stop::Kind::kSyscallExit) {
      // A signal of this run's own (a replayed child's SIGCHLD) made the call return a restart
      // code where the recorded one completed (fork does so whenever a signal is pending): the
      // signal is dropped as run_to_entry drops it, and the kernel issues the call again.
      auto rv = static_cast<int64_t>(t.task.regs().rax);
      if (!tracee::is_restart_code(rv) || tracee::is_restart_code(ev.result)) break;
      restarting = true;
    } else if (restarting && s.kind == Stop::Kind::kSignal) {
      RELIVE_RETURN_IF_ERROR(t.task.syscall(0));
      continue;
    } else if (restarting &&
               (s.kind == Stop::Kind::kSeccomp || s.kind == Stop::Kind::kSyscallEntry)) {
      // The restarted call's entry (restart_syscall for some): on into it.
    } else if (s.kind == Stop::Kind::kClone)
      new_real = static_cast<pid_t>(t.task.event_msg());
    else if (s.kind != Stop::Kind::kExec)
      return unexpected_stop(t, "stopped inside a native syscall");
    RELIVE_RETURN_IF_ERROR(t.task.syscall());
  }
  if (policy == tracee::Policy::kExec) {
    RELIVE_RETURN_IF_ERROR(prepare_exec_image(t, ev));
    // execve turned dispatch off; the new image gets it again before it runs.
    if (mode_ == Mode::kDispatch)
      RELIVE_RETURN_IF_ERROR(enable_dispatch(t, tracee::Injector::At::kExit));
    t.current_trampolines = -1;  // a new trampoline page
    t.sites = std::make_shared<tracee::SitePatcher>(tracee::kTrampolineSyscallInsn);
  }
  if ((policy == tracee::Policy::kClone || policy == tracee::Policy::kFork) && ev.result > 0)
    RELIVE_RETURN_IF_ERROR(adopt_child(t, ev, policy, new_real));
  RELIVE_RETURN_IF_ERROR(apply_writes(t, ev));
  tracee::Regs r = t.task.regs();
  if (pinned && static_cast<int64_t>(r.rax) != ev.result)
    return divergence(current_index(), ev.tid, format_call(ev.nr, ev.args),
                      fmt::format("could not map at the recorded address (result {})",
                                  static_cast<int64_t>(r.rax)));
  r.rax = static_cast<uint64_t>(ev.result);  // e.g. the recorded tid, not this run's
  t.task.set_regs(r);
  t.at_exit_stop = true;
  return Status::Ok();
}

// A thread or process created at replay is known by its recorded id from now on.
Status ReplaySession::adopt_child(Thread& parent, const trace::SyscallEvent& ev,
                                  tracee::Policy policy, pid_t new_real) {
  if (new_real <= 0)
    return divergence(current_index(), ev.tid, "a new thread or process",
                      fmt::format("{} created none", format_call(ev.nr, ev.args)));
  Thread child{tracee::Task(new_real)};
  exiting_groups_.erase(new_real);  // a new process that got an exited one's pid
  child.rec_tid = static_cast<int32_t>(ev.result);
  child.started = false;
  // A thread shares its creator's address space; a process starts with a copy of it.
  child.sites = policy == tracee::Policy::kClone
                    ? parent.sites
                    : std::make_shared<tracee::SitePatcher>(*parent.sites);
  if (policy == tracee::Policy::kFork) {
    // The kernel wrote this run's pid into the child's own memory; the program saw the recorded
    // one.
    RELIVE_ASSIGN_OR_RETURN(uint64_t ctid,
                            tracee::child_settid_address(parent.task, ev.nr, parent.args));
    int32_t recorded = child.rec_tid;
    if (ctid != 0) RELIVE_RETURN_IF_ERROR(child.task.write_mem(ctid, &recorded, sizeof recorded));
  }
  threads_.emplace(child.rec_tid, std::move(child));
  return Status::Ok();
}

// After a native execve: the new image must be the recorded program, prepared like a launched
// one, with the recorded AT_RANDOM bytes (the first logged write).
Status ReplaySession::prepare_exec_image(Thread& t, const trace::SyscallEvent& ev) {
  std::string exe = "/proc/" + std::to_string(t.task.tid()) + "/exe";
  RELIVE_ASSIGN_OR_RETURN(std::string bytes, read_file(exe));
  if (hash128_hex(bytes) != ev.file)
    return divergence(current_index(), ev.tid,
                      "to exec the recorded program (saved as " + ev.file + ")",
                      "exec'd a different file: this host's copy differs from the recorded one");
  RELIVE_ASSIGN_OR_RETURN(tracee::ProcessSetup setup, tracee::setup_process(t.task, true));
  if (ev.writes.empty() || setup.auxv.at_random != ev.writes.front().addr)
    return divergence(current_index(), ev.tid, "the recorded initial stack of the exec'd program",
                      "got a different stack layout");
  return Status::Ok();
}

Result<std::string> ReplaySession::mapped_file_path(const std::string& name) {
  if (verified_files_.count(name)) return reader_->file_path(name);
  if (!files_) {
    RELIVE_ASSIGN_OR_RETURN(trace::FileStore store,
                            trace::FileStore::open(trace::files_dir(reader_->dir())));
    files_.emplace(std::move(store));
  }
  Result<std::string> path = files_->verify(name);
  if (!path.ok()) return path.status().with_context("a mapped file fails its checksum");
  verified_files_.insert(name);
  return path;
}

// A shared writable mapping is mapped from a working copy of the file, one per recorded file
// (shared_key), so that the replayed processes share it as the recorded ones shared the file.
// Its contents are the saved copy of this mapping's moment: on a later mapping of the same file
// the copy already holds what the replay wrote through earlier mappings, and is brought to the
// recorded contents only where it differs (writes made with write(2), emulated at replay).
Result<std::string> ReplaySession::shared_copy(const trace::SyscallEvent& ev,
                                               const std::string& saved) {
  if (shared_dir_.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "relive-shared-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return PosixError("mkdtemp " + tmpl, errno);
    shared_dir_ = tmpl;
  }
  auto [it, fresh] = shared_copies_.try_emplace(
      ev.shared_key, shared_dir_ + "/" + std::to_string(shared_copies_.size()));
  const std::string& copy = it->second;
  if (!fresh) {
    RELIVE_ASSIGN_OR_RETURN(std::string now, read_file(copy));
    if (hash128_hex(now) == ev.file) return copy;
  }
  RELIVE_ASSIGN_OR_RETURN(std::string contents, read_file(saved));
  ScopedFd fd(::open(copy.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError("open " + copy, errno);
  if (::ftruncate(fd.get(), static_cast<off_t>(contents.size())) != 0)
    return PosixError("ftruncate " + copy, errno);
  for (size_t at = 0; at < contents.size();) {
    ssize_t n =
        ::pwrite(fd.get(), contents.data() + at, contents.size() - at, static_cast<off_t>(at));
    if (n <= 0) return PosixError("write " + copy, errno);
    at += static_cast<size_t>(n);
  }
  return copy;
}

// Unless the replay handed its process over (detach), whatever ended it, no replayed process
// outlives it (a child left stopped, or running on without its tracer).
ReplaySession::~ReplaySession() {
  if (!handed_over_)
    for (const auto& [rec, t] : threads_) ::kill(t.task.tid(), SIGKILL);
  if (shared_dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(shared_dir_, ec);
}

// The file as it was at record time is mapped from the trace's saved copy at the recorded
// address: open it, mmap it MAP_FIXED, close it, all injected in place of the original call.
Status ReplaySession::complete_map_file(Thread& t, const trace::SyscallEvent& ev) {
  RELIVE_ASSIGN_OR_RETURN(std::string path, mapped_file_path(ev.file));
  bool shared = !ev.shared_key.empty();
  if (shared) {
    RELIVE_ASSIGN_OR_RETURN(path, shared_copy(ev, path));
  }
  if (path.size() + 1 > tracee::kScratchSize) return Status::InvalidArgument("trace path too long");
  RELIVE_RETURN_IF_ERROR(t.task.write_mem(tracee::kScratchAddr, path.c_str(), path.size() + 1));
  tracee::Injector inj(t.task, tracee::Injector::At::kEntry, 0);
  RELIVE_ASSIGN_OR_RETURN(
      int64_t fd,
      inj.call(SYS_openat, {static_cast<uint64_t>(AT_FDCWD), tracee::kScratchAddr,
                            static_cast<uint64_t>((shared ? O_RDWR : O_RDONLY) | O_CLOEXEC)}));
  if (fd < 0) return Status::IoError("cannot open " + path + " in the replayed process");
  uint64_t flags = (ev.args[3] & ~static_cast<uint64_t>(MAP_FIXED_NOREPLACE)) | MAP_FIXED;
  RELIVE_ASSIGN_OR_RETURN(
      int64_t addr, inj.call(SYS_mmap, {static_cast<uint64_t>(ev.result), ev.args[1], ev.args[2],
                                        flags, static_cast<uint64_t>(fd), ev.args[5]}));
  RELIVE_ASSIGN_OR_RETURN(int64_t closed, inj.call(SYS_close, {static_cast<uint64_t>(fd)}));
  (void)closed;
  if (addr != ev.result)
    return divergence(current_index(), ev.tid, fmt::format("{} mapped at {:#x}", path, ev.result),
                      fmt::format("got {:#x}", addr));
  tracee::Regs r = t.entry_regs;
  r.rax = static_cast<uint64_t>(ev.result);
  r.orig_rax = static_cast<uint64_t>(ev.nr);
  t.task.set_regs(r);
  t.at_exit_stop = true;
  return Status::Ok();
}

Status ReplaySession::complete_exit(Thread& t, const trace::SyscallEvent& ev) {
  pid_t group = ev.nr == SYS_exit_group ? tgid_of(t.task.tid()) : 0;
  RELIVE_RETURN_IF_ERROR(t.task.cont());
  if (ev.nr == SYS_exit_group) {
    if (group > 0) exiting_groups_.insert(group);
    return Status::Ok();  // on_process_exit collects every thread
  }
  if (t.rec_tid == leader_ && threads_.size() > 1) return Status::Ok();  // reported last
  RELIVE_RETURN_IF_ERROR(wait_gone(t.task, t.rec_tid));
  threads_.erase(ev.tid);
  return Status::Ok();
}

// Lets `task` run its exit to the end, through the stops of a dying thread. One that comes to a
// syscall instead is running on where the log has it gone (resuming it would run the call for
// real): a divergence, and it is killed.
Status ReplaySession::wait_gone(const tracee::Task& task, int32_t rec_tid) {
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, tracee::wait_stop(task.tid()));
    const Stop& s = got.second;
    if (s.kind == Stop::Kind::kExited) return Status::Ok();
    if (s.kind == Stop::Kind::kSeccomp || s.kind == Stop::Kind::kSyscallEntry ||
        s.kind == Stop::Kind::kClone || s.kind == Stop::Kind::kExec) {
      ::kill(task.tid(), SIGKILL);
      return divergence(current_index(), rec_tid, "the thread to be gone",
                        std::string("stopped at ") + tracee::stop_kind_name(s.kind) +
                            (s.nr >= 0 ? " of " + format_call(s.nr, s.args) : std::string()));
    }
    RELIVE_RETURN_IF_ERROR(task.cont());
  }
}

Status ReplaySession::on_thread_exit(const trace::ThreadExitEvent& ev) {
  auto it = threads_.find(ev.tid);
  if (it == threads_.end()) return Status::Ok();  // already reaped at its exit syscall
  // A thread's own exit is its exit syscall (complete_exit), so this one was killed: by a
  // signal it was just given (let that signal go), or along with its process (exit_group,
  // another thread's fatal signal, a SIGKILL from anywhere, which leaves no signal stop). The
  // SIGKILL does at replay what that did at record; a process already dying ignores it.
  Thread* given = it->second.resume_sig != 0 ? &it->second : nullptr;
  pid_t group = tgid_of(it->second.task.tid());
  if (!given) {  // the signal may have been given to another thread of its process
    for (auto& [rec, t] : threads_)
      if (t.resume_sig != 0 && group > 0 && tgid_of(t.task.tid()) == group) given = &t;
  }
  if (given) {
    RELIVE_RETURN_IF_ERROR(given->task.cont(std::exchange(given->resume_sig, 0)));
  } else if (group <= 0 || !exiting_groups_.count(group)) {
    ::kill(it->second.task.tid(), SIGKILL);
  }  // else its process's exit_group, resumed just before, kills it: a SIGKILL sent first
     // would end the process with SIGKILL's status instead of the exit code
  RELIVE_RETURN_IF_ERROR(wait_gone(it->second.task, it->first));
  threads_.erase(it);
  return Status::Ok();
}

Status ReplaySession::on_signal(const trace::SignalEvent& ev) {
  RELIVE_ASSIGN_OR_RETURN(Thread * t, thread_of(ev.tid));
  if (t->preempted) {
    // Delivered where the recording preempted the thread (PreemptEvent): it is stopped there.
    RELIVE_RETURN_IF_ERROR(t->task.set_siginfo(ev.siginfo));
    t->resume_sig = ev.signo;
    return Status::Ok();
  }
  if (!t->at_exit_stop)
    return unexpected_stop(
        *t, fmt::format("was not at a syscall exit where signal {} was delivered", ev.signo));
  t->at_exit_stop = false;
  int inject = std::exchange(t->queued_sig, 0) == ev.signo ? 0 : ev.signo;
  for (;;) {
    RELIVE_RETURN_IF_ERROR(go_on(t->task, inject));
    inject = 0;
    RELIVE_ASSIGN_OR_RETURN(auto got, wait_for(*t));
    const Stop& s = got.second;
    if (s.kind == Stop::Kind::kSignal && s.signo == ev.signo) break;
    // A signal of this run's own (a replayed child's SIGCHLD, of a lower number, comes first)
    // is dropped, as run_to_entry drops it; so is a group-stop notification.
    if (s.kind == Stop::Kind::kGroupStop) continue;
    if (s.kind == Stop::Kind::kSignal) {
      std::string info;
      RELIVE_RETURN_IF_ERROR(t->task.get_siginfo(&info));
      if (!tracee::is_synchronous_fault(s.signo, info)) continue;
    }
    return unexpected_stop(*t, fmt::format("did not take signal {}", ev.signo));
  }
  RELIVE_RETURN_IF_ERROR(t->task.set_siginfo(ev.siginfo));
  t->resume_sig = ev.signo;
  return Status::Ok();
}

Status ReplaySession::on_rdtsc(const trace::RdtscEvent& ev) {
  RELIVE_ASSIGN_OR_RETURN(Thread * t, thread_of(ev.tid));
  if (t->parked)
    return divergence(current_index(), ev.tid, "rdtsc", "called " + format_call(t->nr, t->args));
  RELIVE_RETURN_IF_ERROR(run_to_entry(*t));
  if (t->parked)
    return divergence(current_index(), ev.tid, "rdtsc", "called " + format_call(t->nr, t->args));
  RELIVE_ASSIGN_OR_RETURN(bool ok, tracee::apply_rdtsc(t->task, {ev.tsc, ev.aux, ev.rdtscp}));
  if (!ok) return divergence(current_index(), ev.tid, "rdtsc", "faulted elsewhere");
  t->resume_sig = 0;  // the SIGSEGV that trapped it is not delivered
  return Status::Ok();
}

// The recording preempted the thread in a spin-wait whose passes change nothing: run it until its
// registers and state hash are the recorded ones. Being an exact match of everything the thread
// can see, the first such moment is as good as the recorded one. Bounded: a thread that does not
// get there within kPreemptSearch is a divergence.
// The recorder patched a syscall site as the thread was about to run on from that site's syscall
// exit (RecordSession::leave_syscall_site): the thread is stopped at that syscall, replayed.
Status ReplaySession::on_site_patch(const trace::SitePatchEvent& ev) {
  RELIVE_ASSIGN_OR_RETURN(Thread * t, thread_of(ev.tid));
  std::string what = fmt::format("to patch the syscall site at {:#x}", ev.site);
  if (mode_ == Mode::kAllSyscalls || t->parked || !t->started || !t->prefilled.empty())
    return divergence(current_index(), ev.tid, what, "is not stopped after a syscall");
  tracee::Regs r = t->task.regs();
  if (r.rip != ev.site + 2)
    return divergence(current_index(), ev.tid, what,
                      fmt::format("is stopped after a syscall at {:#x}", r.rip - 2));
  tracee::SitePatch patch{ev.site, ev.stub, ev.stub_page, ev.new_page};
  // Signals of this run's own that arrive while a stub page is mapped are dropped, as
  // run_to_entry drops them.
  Status st = t->sites->apply(t->task, patch, /*at_entry=*/!t->at_exit_stop, nullptr);
  if (st.code() == Status::Code::kCorruption)
    return divergence(current_index(), ev.tid, what, st.message());
  RELIVE_RETURN_IF_ERROR(st);
  if (ev.new_page) t->at_exit_stop = true;  // the injected mmap left it at an exit stop
  return Status::Ok();
}

Status ReplaySession::on_preempt(const trace::PreemptEvent& ev) {
  constexpr auto kPreemptSearch = std::chrono::seconds(30);
  RELIVE_ASSIGN_OR_RETURN(Thread * t, thread_of(ev.tid));
  static_assert(sizeof(tracee::Regs) == trace::kPreemptRegsBytes);
  tracee::Regs want{};
  std::memcpy(&want, ev.regs.data(), sizeof want);
  std::string expected = fmt::format("preemption at ip {:#x}", want.rip);
  if (t->parked)
    return divergence(current_index(), ev.tid, expected, "called " + format_call(t->nr, t->args));
  RELIVE_RETURN_IF_ERROR(start_thread(*t));
  auto how = mode_ == Mode::kAllSyscalls ? tracee::ResumeHow::kSyscall : tracee::ResumeHow::kCont;
  auto deadline = tracee::kernel_steady_now() + kPreemptSearch;
  uint64_t passes = 0, register_matches = 0;
  // A signal still to be delivered (resume_sig) must be taken before this state can count.
  for (bool here = t->resume_sig == 0;; here = true) {
    tracee::Regs now = t->task.regs();
    if (here && now.rip == want.rip && tracee::same_regs(now, want)) {
      ++register_matches;
      RELIVE_ASSIGN_OR_RETURN(uint64_t h, tracee::state_hash(t->task));
      if (h == ev.state_hash) break;
    }
    auto left = deadline - tracee::kernel_steady_now();
    if (left <= decltype(left)::zero())
      return divergence(
          current_index(), ev.tid, expected,
          fmt::format("did not reach that state in {} passes over the address ({} with the "
                      "recorded registers) within {} s",
                      passes, register_matches, kPreemptSearch.count()));
    RELIVE_ASSIGN_OR_RETURN(
        tracee::RunToResult r,
        tracee::run_to(t->task, want.rip, how, std::chrono::ceil<std::chrono::milliseconds>(left),
                       std::exchange(t->resume_sig, 0)));
    t->at_exit_stop = false;
    if (!r.reached) {
      if (r.other.kind == Stop::Kind::kExited) process_gone_ = true;
      return unexpected_stop(*t, r.interrupted ? "ran past the search deadline"
                                               : std::string("stopped at ") +
                                                     tracee::stop_kind_name(r.other.kind) +
                                                     " before the preemption point");
    }
    ++passes;
  }
  t->at_exit_stop = false;
  t->parked = false;
  t->preempted = true;
  return Status::Ok();
}

Result<int> ReplaySession::on_process_exit(const trace::ProcessExitEvent& ev) {
  // Threads stopped where the replay left them are not resumed: the exit (exit_group, a fatal
  // signal) kills them, and one resumed could race it to its next syscall.
  auto resume_any = [&](const tracee::Task& task, int sig) { return go_on(task, sig); };
  for (auto& [rec, t] : threads_)
    if (t.resume_sig != 0) (void)t.task.cont(std::exchange(t.resume_sig, 0));  // a fatal signal
  if (WIFSIGNALED(ev.status) && WTERMSIG(ev.status) == SIGKILL) {
    // Killed from outside (a SIGKILL never stops at the tracer, so the log has no event for
    // it): the replay has come to where the recording ended and ends the same way. What the
    // program did after its last stop (fast-path calls still in its buffer) died with it.
    for (auto& [rec, t] : threads_) ::kill(t.task.tid(), SIGKILL);
  }
  int leader_status = -1;
  while (!threads_.empty()) {
    RELIVE_ASSIGN_OR_RETURN(auto next, tracee::wait_stop_for(-1, kExitQuiet));
    if (!next) {
      // Nothing happened for a while. A thread still in a ptrace stop will never go: nothing
      // resumes it here, and its process is not dying (a SIGKILL would have ended the stop). The
      // log has every process gone, so it is a divergence, not a wait for ever.
      for (auto& [rec, t] : threads_) {
        if (task_state(t.task.tid()) != 't') continue;  // ptrace stop
        return divergence(current_index(), rec, "every process to be gone",
                          t.parked ? "still waiting at " + format_call(t.nr, t.args)
                                   : std::string("still stopped"));
      }
      continue;  // the rest are still dying (a core dump, a large address space)
    }
    auto got = *next;
    auto it = std::find_if(threads_.begin(), threads_.end(),
                           [&](const auto& kv) { return kv.second.task.tid() == got.first; });
    const Stop& s = got.second;
    std::string info;
    bool dispatched = mode_ == Mode::kDispatch && s.kind == Stop::Kind::kSignal &&
                      s.signo == SIGSYS && tracee::Task(got.first).get_siginfo(&info).ok() &&
                      tracee::is_dispatched_syscall(info);
    if (s.kind == Stop::Kind::kSeccomp || s.kind == Stop::Kind::kSyscallEntry ||
        s.kind == Stop::Kind::kClone || s.kind == Stop::Kind::kExec || dispatched) {
      // Still running where the log has every process gone: resuming would run the call for
      // real. The destructor kills what is left.
      if (it == threads_.end()) ::kill(got.first, SIGKILL);
      return divergence(current_index(), it == threads_.end() ? 0 : it->first,
                        "every process to be gone",
                        std::string("stopped at ") + tracee::stop_kind_name(s.kind) +
                            (s.nr >= 0 ? " of " + format_call(s.nr, s.args) : std::string()));
    }
    if (s.kind != Stop::Kind::kExited) {
      (void)resume_any(tracee::Task(got.first), 0);
      continue;
    }
    if (it == threads_.end()) continue;
    if (it->first == leader_) leader_status = got.second.status;
    threads_.erase(it);
  }
  if (leader_status != ev.status)
    return divergence(current_index(), leader_,
                      fmt::format("exit with wait status {:#x}", ev.status),
                      fmt::format("ended with wait status {:#x}", leader_status));
  return ev.status;
}

}  // namespace relive::replay
