// relive record --pid: attach to a running process without harming it.
//
// 1. Seize and interrupt every thread (threads created meanwhile too); a thread that was inside
//    a syscall is rewound to re-issue it (state R0, a clean syscall boundary). A thread that
//    stopped inside the vDSO is stepped out first: the patch rewrites vDSO entry points.
// 2. Patch the vDSO and map the scratch and trampoline pages (as a launched process gets).
// 3. Inject a fork into the first thread (exit signal 0, so the program's own wait() never sees
//    it). The child is a copy-on-write image of R0 with one thread: its descriptors are closed,
//    its registers set to R0, and every other thread is recreated in it (an injected clone
//    given that thread's registers, FPU state, signal mask, clear-tid address, robust futex
//    list, alternate signal stack, rseq area and name). It is left stopped for CRIU to dump
//    into the trace's checkpoint/ directory; the header maps each thread's tid in the copy to
//    the original's.
// 4. Reap the dumped child from inside the original, restore R0, and record every thread from
//    there, stopping at every syscall so that recording can end with a clean detach, which puts
//    the vDSO's original entry points back.
#include "record/attach.h"

#include <elf.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/file_util.h"
#include "common/process_tree.h"
#include "drivers/criu/criu.h"
#include "record/event_sink.h"
#include "record/host_facts.h"
#include "record/record_session.h"
#include "record/syscall_capture.h"
#include "trace/file_store.h"
#include "trace/trace_dir.h"
#include "trace/trace_writer.h"
#include "tracee/cpu_binding.h"
#include "tracee/inject.h"
#include "tracee/launch.h"
#include "tracee/process_setup.h"
#include "tracee/signals.h"
#include "tracee/single_step.h"
#include "tracee/syscall_dispatch.h"
#include "tracee/vdso.h"

namespace relive::record {
namespace {

using tracee::Regs;
using tracee::Stop;

volatile std::sig_atomic_t g_stop_requested = 0;

// No PTRACE_O_EXITKILL: if relive dies, the process it attached to must carry on.
long attach_options() { return tracee::trace_options(false) & ~PTRACE_O_EXITKILL; }

// Seizes `pid` and stops it at a clean user-space boundary; returns that state (R0).
Result<Regs> seize(pid_t pid) {
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, attach_options()) != 0)
    return PosixError("attach to " + std::to_string(pid), errno);
  if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0)
    return PosixError("PTRACE_INTERRUPT", errno);
  tracee::Task task(pid);
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, tracee::wait_stop(pid));
    if (got.second.kind == Stop::Kind::kExited)
      return Status::NotFound("process exited while attaching");
    if (got.second.kind == Stop::Kind::kGroupStop) break;
    // A signal on its way in: let it go through, then stop again.
    RELIVE_RETURN_IF_ERROR(
        task.cont(got.second.kind == Stop::Kind::kSignal ? got.second.signo : 0));
    ::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr);
  }
  Regs r = task.regs();
  int64_t rax = static_cast<int64_t>(r.rax);
  if (static_cast<int64_t>(r.orig_rax) >= 0 && tracee::is_restart_code(rax)) {
    // Interrupted inside a syscall: re-issue it (what the kernel would do; a sleep resumes
    // through restart_syscall with what was left of it).
    r.rip -= 2;
    r.rax = rax == -516 ? static_cast<uint64_t>(SYS_restart_syscall) : r.orig_rax;
  }
  r.orig_rax = static_cast<uint64_t>(-1);
  task.set_regs(r);
  return r;
}

// A thread stopped inside the vDSO (a clock read in a tight loop is often there) would be in
// the middle of code the patch rewrites: run it out, one instruction at a time, first. vDSO
// functions are short and never block; the bound only guards against a vDSO that loops.
Result<Regs> step_out_of_vdso(pid_t pid, std::vector<int>* held) {
  tracee::Task task(pid);
  RELIVE_ASSIGN_OR_RETURN(bool inside, tracee::in_vdso(pid, task.regs().rip));
  if (!inside) return task.regs();
  RELIVE_ASSIGN_OR_RETURN(tracee::Mapping vdso, tracee::vdso_mapping(pid));
  auto outside = [&](const Regs& r) { return r.rip < vdso.start || r.rip >= vdso.end; };
  RELIVE_ASSIGN_OR_RETURN(tracee::SteppedOut out, tracee::step_until(task, outside, 1000000));
  held->insert(held->end(), out.held_signals.begin(), out.held_signals.end());
  return task.regs();
}

Status reap_child(const tracee::Task& task, uint64_t syscall_insn, pid_t child,
                  std::vector<int>* held);

// A thread held at R0 and what the checkpoint copy needs to recreate it.
struct HeldThread {
  pid_t tid = 0;
  Regs r0{};
  std::string xstate;  // PTRACE_GETREGSET NT_X86_XSTATE
  uint64_t sigmask = 0;
  uint64_t clear_tid = 0;  // set_tid_address / CLONE_CHILD_CLEARTID
  uint64_t robust_head = 0, robust_len = 0;
  stack_t altstack{};
  bool has_rseq = false;
  __ptrace_rseq_configuration rseq{};
  std::string comm;
};

// What a seized thread's copy needs that its registers do not say. Injects prctl and
// sigaltstack into it (their answers land on the scratch page); its registers are R0 after.
Status read_thread_extras(HeldThread* t, uint64_t syscall_insn, std::vector<int>* held) {
  tracee::Task task(t->tid);
  std::string xs(1u << 16, '\0');
  iovec iov{xs.data(), xs.size()};
  if (::ptrace(PTRACE_GETREGSET, t->tid, NT_X86_XSTATE, &iov) != 0)
    return PosixError(fmt::format("xstate of thread {}", t->tid), errno);
  t->xstate = xs.substr(0, iov.iov_len);
  if (::ptrace(PTRACE_GETSIGMASK, t->tid, sizeof t->sigmask, &t->sigmask) != 0)
    return PosixError(fmt::format("signal mask of thread {}", t->tid), errno);
  if (::syscall(SYS_get_robust_list, t->tid, &t->robust_head, &t->robust_len) != 0)
    return PosixError(fmt::format("robust list of thread {}", t->tid), errno);
  t->has_rseq = ::ptrace(PTRACE_GET_RSEQ_CONFIGURATION, t->tid, sizeof t->rseq, &t->rseq) > 0 &&
                t->rseq.rseq_abi_pointer != 0;
  auto comm = read_file(fmt::format("/proc/{}/comm", t->tid));
  t->comm = comm.ok() ? comm->substr(0, comm->find('\n')) : "";
  {
    tracee::Injector inj(task, tracee::Injector::At::kElsewhere, syscall_insn);
    RELIVE_ASSIGN_OR_RETURN(int64_t got,
                            inj.call(SYS_prctl, {PR_GET_TID_ADDRESS, tracee::kScratchAddr}));
    if (got != 0) return Status::IoError(fmt::format("PR_GET_TID_ADDRESS: error {}", -got));
    RELIVE_RETURN_IF_ERROR(task.read_mem(tracee::kScratchAddr, &t->clear_tid, 8));
    RELIVE_ASSIGN_OR_RETURN(got, inj.call(SYS_sigaltstack, {0, tracee::kScratchAddr + 64}));
    if (got != 0) return Status::IoError(fmt::format("sigaltstack: error {}", -got));
    RELIVE_RETURN_IF_ERROR(
        task.read_mem(tracee::kScratchAddr + 64, &t->altstack, sizeof t->altstack));
    held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
  }
  task.set_regs(t->r0);
  return Status::Ok();
}

// Recreates thread `t` in the checkpoint copy whose first thread is `c` (stopped, traced):
// an injected clone, then the thread's own state. Returns the new thread's tid, left traced.
Result<pid_t> recreate_thread(const tracee::Task& c, uint64_t syscall_insn, const HeldThread& t,
                              std::vector<int>* held) {
  constexpr uint64_t kFlags =
      CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
  int64_t tid;
  {
    Regs before = c.regs();
    tracee::Injector inj(c, tracee::Injector::At::kElsewhere, syscall_insn);
    RELIVE_ASSIGN_OR_RETURN(tid, inj.call(SYS_clone, {kFlags, 0, 0, 0, 0}));
    held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
    c.set_regs(before);
  }
  if (tid <= 0) return Status::IoError(fmt::format("recreating thread {}: error {}", t.tid, -tid));
  tracee::Task n(static_cast<pid_t>(tid));
  RELIVE_ASSIGN_OR_RETURN(auto first, tracee::wait_stop(n.tid()));
  if (first.second.kind == Stop::Kind::kExited) return Status::IoError("recreated thread died");
  {
    // Its per-thread kernel state, set from inside it (the scratch page carries the arguments).
    tracee::Injector inj(n, tracee::Injector::At::kElsewhere, syscall_insn);
    auto must = [&](int nr, std::initializer_list<uint64_t> args, const char* what) -> Status {
      RELIVE_ASSIGN_OR_RETURN(int64_t got, inj.call(nr, args));
      if (got < 0)
        return Status::IoError(fmt::format("{} of thread {}: error {}", what, t.tid, -got));
      return Status::Ok();
    };
    RELIVE_RETURN_IF_ERROR(must(SYS_set_tid_address, {t.clear_tid}, "set_tid_address"));
    if (t.robust_head != 0)
      RELIVE_RETURN_IF_ERROR(
          must(SYS_set_robust_list, {t.robust_head, t.robust_len}, "set_robust_list"));
    RELIVE_RETURN_IF_ERROR(n.write_mem(tracee::kScratchAddr, &t.altstack, sizeof t.altstack));
    if (!(t.altstack.ss_flags & SS_DISABLE))
      RELIVE_RETURN_IF_ERROR(must(SYS_sigaltstack, {tracee::kScratchAddr, 0}, "sigaltstack"));
    if (t.has_rseq)
      RELIVE_RETURN_IF_ERROR(must(
          SYS_rseq, {t.rseq.rseq_abi_pointer, t.rseq.rseq_abi_size, 0, t.rseq.signature}, "rseq"));
    std::string comm = t.comm.substr(0, 15);
    comm.push_back('\0');
    RELIVE_RETURN_IF_ERROR(n.write_mem(tracee::kScratchAddr + 256, comm.data(), comm.size()));
    RELIVE_RETURN_IF_ERROR(must(SYS_prctl, {PR_SET_NAME, tracee::kScratchAddr + 256}, "name"));
    held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
  }
  n.set_regs(t.r0);
  std::string xs = t.xstate;
  iovec iov{xs.data(), xs.size()};
  if (::ptrace(PTRACE_SETREGSET, n.tid(), NT_X86_XSTATE, &iov) != 0)
    return PosixError(fmt::format("xstate of recreated thread {}", t.tid), errno);
  uint64_t mask = t.sigmask;
  if (::ptrace(PTRACE_SETSIGMASK, n.tid(), sizeof mask, &mask) != 0)
    return PosixError(fmt::format("signal mask of recreated thread {}", t.tid), errno);
  return n.tid();
}

// Runs traced thread `tid` until its next stop of `kind`, dropping any other signal (nobody but
// relive knows the checkpoint copy: a signal to it is not the program's).
Status run_to(pid_t tid, Stop::Kind kind, int deliver) {
  for (;;) {
    if (::ptrace(PTRACE_CONT, tid, nullptr, deliver) != 0)
      return PosixError(fmt::format("resuming thread {} of the checkpoint copy", tid), errno);
    RELIVE_ASSIGN_OR_RETURN(auto got, tracee::wait_stop(tid));
    const Stop& s = got.second;
    if (s.kind == kind && (kind != Stop::Kind::kSignal || s.signo == SIGSTOP)) return Status::Ok();
    if (s.kind == Stop::Kind::kExited || s.kind == Stop::Kind::kExitEvent)
      return Status::IoError(fmt::format("thread {} of the checkpoint copy died", tid));
    deliver = 0;
  }
}

// Leaves the checkpoint copy (first thread `c`, other threads `others`, all at a ptrace stop) in
// a group stop for CRIU, detached, every thread in TASK_STOPPED and no stop signal queued. CRIU
// (compel) resumes a seized task once for each stop signal it counts, the queued ones and the
// stop it finds it in, expecting a trap each time: a thread still on its way into the stop when
// CRIU seizes it, or a SIGSTOP still queued, makes it resume once too often, and the copy runs
// its program (and dies of closed descriptors). PTRACE_DETACH with SIGSTOP leaves both open.
// So the copy stops while traced: a SIGSTOP to the first thread, delivered from its signal stop,
// starts the group stop; each other thread, resumed, takes it before any user code runs; each
// detaches from its group stop and stays in it.
Status stop_for_criu(const tracee::Task& c, const std::vector<pid_t>& others) {
  if (::syscall(SYS_tgkill, c.tid(), c.tid(), SIGSTOP) != 0)
    return PosixError("stopping the checkpoint copy", errno);
  RELIVE_RETURN_IF_ERROR(run_to(c.tid(), Stop::Kind::kSignal, 0));
  RELIVE_RETURN_IF_ERROR(run_to(c.tid(), Stop::Kind::kGroupStop, SIGSTOP));
  for (pid_t tid : others) RELIVE_RETURN_IF_ERROR(run_to(tid, Stop::Kind::kGroupStop, 0));
  for (pid_t tid : others)
    if (::ptrace(PTRACE_DETACH, tid, nullptr, 0) != 0)
      return PosixError("detach recreated thread", errno);
  if (::ptrace(PTRACE_DETACH, c.tid(), nullptr, 0) != 0) return PosixError("detach child", errno);
  // Detached from a group stop, a thread wakes and re-enters it: wait until each has.
  auto all_stopped = [&] {
    for (pid_t tid : threads_of(c.tid()))
      if (task_state(tid) != 'T') return false;
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!all_stopped()) {
    if (std::chrono::steady_clock::now() > deadline)
      return Status::IoError("the checkpoint copy did not stop");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return Status::Ok();
}

// Forks the checkpoint child from inside the stopped original and recreates `others` in it.
// Returns the child, stopped, and the tids of the recreated threads (in `others`' order).
Result<pid_t> fork_checkpoint_child(const tracee::Task& task, uint64_t syscall_insn, const Regs& r0,
                                    const std::vector<HeldThread>& others,
                                    std::vector<pid_t>* recreated, std::vector<int>* held) {
  task.set_regs(r0);
  tracee::Injector inj(task, tracee::Injector::At::kElsewhere, syscall_insn);
  // Plain clone with exit signal 0: a fork whose end no wait() of the program observes.
  RELIVE_ASSIGN_OR_RETURN(int64_t child, inj.call(SYS_clone, {0, 0, 0, 0, 0}));
  held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
  if (child <= 0) return Status::IoError("injected fork failed: error " + std::to_string(-child));
  tracee::Task c(static_cast<pid_t>(child));
  RELIVE_ASSIGN_OR_RETURN(auto first, tracee::wait_stop(c.tid()));
  if (first.second.kind == Stop::Kind::kExited) return Status::IoError("checkpoint child died");
  tracee::Injector cinj(c, tracee::Injector::At::kElsewhere, syscall_insn);
  // The replay never touches a descriptor for real; CRIU then has nothing external to save.
  RELIVE_ASSIGN_OR_RETURN(int64_t closed, cinj.call(SYS_close_range, {0, ~0u, 0}));
  (void)closed;
  auto abandon = [&](Status why) -> Status {
    ::kill(static_cast<pid_t>(child), SIGKILL);
    for (pid_t tid : *recreated) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    ::ptrace(PTRACE_DETACH, c.tid(), nullptr, nullptr);
    (void)reap_child(task, syscall_insn, static_cast<pid_t>(child), held);
    return why;
  };
  for (const HeldThread& t : others) {
    Result<pid_t> n = recreate_thread(c, syscall_insn, t, held);
    if (!n.ok()) return abandon(n.status());
    recreated->push_back(*n);
  }
  c.set_regs(r0);
  Status stopped = stop_for_criu(c, *recreated);
  if (!stopped.ok()) return abandon(stopped);
  return static_cast<pid_t>(child);
}

Status reap_child(const tracee::Task& task, uint64_t syscall_insn, pid_t child,
                  std::vector<int>* held) {
  tracee::Injector inj(task, tracee::Injector::At::kExit, syscall_insn);
  inj.swallow_sigchld_from(child);
  RELIVE_ASSIGN_OR_RETURN(int64_t got,
                          inj.call(SYS_wait4, {static_cast<uint64_t>(child), 0, __WALL, 0}));
  held->insert(held->end(), inj.held_signals().begin(), inj.held_signals().end());
  if (got != child)
    return Status::IoError("could not reap the checkpoint child: " + std::to_string(got));
  return Status::Ok();
}

Result<std::vector<std::string>> nul_list(const std::string& path) {
  RELIVE_ASSIGN_OR_RETURN(std::string raw, read_file(path));
  std::vector<std::string> out;
  size_t at = 0;
  while (at < raw.size()) {
    size_t end = raw.find('\0', at);
    if (end == std::string::npos) end = raw.size();
    out.push_back(raw.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

Result<trace::TraceHeader> attach_header(pid_t pid) {
  trace::TraceHeader h;
  h.start = trace::StartKind::kCheckpoint;
  std::string proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  h.program = std::filesystem::read_symlink(proc + "/exe", ec).string();
  h.cwd = std::filesystem::read_symlink(proc + "/cwd", ec).string();
  RELIVE_ASSIGN_OR_RETURN(h.argv, nul_list(proc + "/cmdline"));
  RELIVE_ASSIGN_OR_RETURN(h.env, nul_list(proc + "/environ"));
  h.checkpoint = "checkpoint";
  h.initial_tid = pid;
  fill_host_facts(&h);
  // rdtsc is not trapped in an attached process: a process left with PR_SET_TSC set by a relive
  // that died would be killed by its next rdtsc. CR/TR ships the pages rdtsc made differ.
  h.rdtsc = trace::TscTrapping::kUntrapped;
  return h;
}

// Detaches from the original unharmed when anything before recording fails.
struct AttachGuard {
  pid_t pid = 0;
  bool armed = true;
  std::vector<pid_t> seized;      // every thread seized so far
  std::vector<HeldThread> at_r0;  // those whose R0 is known
  std::optional<tracee::VdsoPatch> vdso;
  const std::vector<int>* held = nullptr;  // signals relive held back: the process's own
  ~AttachGuard() {
    if (!armed) return;
    if (vdso) (void)tracee::unpatch_vdso(tracee::Task(pid), *vdso);
    for (const HeldThread& t : at_r0) tracee::Task(t.tid).set_regs(t.r0);
    // Held signals first: each thread takes them before it runs user code again.
    if (held != nullptr)
      for (int sig : *held) ::kill(pid, sig);
    for (pid_t tid : seized) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  }
};

// Seizes every thread of `pid` at R0 (threads that appear meanwhile too, until none does),
// stepping each out of the vDSO. The process's own thread first.
Status seize_all(pid_t pid, AttachGuard* guard, std::vector<int>* held) {
  for (bool more = true; more;) {
    more = false;
    std::vector<pid_t> tids = threads_of(pid);
    if (tids.empty()) return Status::NotFound("no process " + std::to_string(pid));
    for (pid_t tid : tids) {
      if (std::find(guard->seized.begin(), guard->seized.end(), tid) != guard->seized.end())
        continue;
      more = true;
      Result<Regs> got = seize(tid);
      if (!got.ok() && tid != pid && got.status().code() == Status::Code::kNotFound) continue;
      guard->seized.push_back(tid);
      RELIVE_RETURN_IF_ERROR(got.status());
      HeldThread t;
      t.tid = tid;
      RELIVE_ASSIGN_OR_RETURN(t.r0, step_out_of_vdso(tid, held));
      guard->at_r0.push_back(t);
    }
  }
  return Status::Ok();
}

void on_stop_signal(int) { g_stop_requested = RecordSession::kDetach; }
void on_freeze_signal(int) { g_stop_requested = RecordSession::kFreeze; }

}  // namespace

Result<RecordResult> record_attached(const RecordOptions& o) {
  pid_t pid = o.attach_pid;
  // From the start: a SIGINT that arrived mid-injection and killed relive would leave the
  // process with the registers of an injected call. Asked to stop during the attach, relive
  // finishes it and detaches at once.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;  // no SA_RESTART: the session's wait returns to notice it
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  sa.sa_handler = on_freeze_signal;
  ::sigaction(SIGUSR1, &sa, nullptr);
  std::error_code exists_ec;
  if (pid <= 0 || !std::filesystem::exists("/proc/" + std::to_string(pid) + "/task", exists_ec))
    return Status::NotFound("no process " + std::to_string(pid));
  // The tracer's CPU now, so that a bad --cpu is refused before the process is touched.
  RELIVE_ASSIGN_OR_RETURN(tracee::CpuBinding cpu, tracee::CpuBinding::bind_caller(o.cpu));
  std::error_code ec;
  if (std::filesystem::exists(o.trace_dir, ec) && !std::filesystem::is_empty(o.trace_dir, ec))
    return Status::InvalidArgument(o.trace_dir + ": trace directory exists and is not empty");
  RELIVE_RETURN_IF_ERROR(make_dirs(trace::checkpoint_dir(o.trace_dir)));
  RELIVE_ASSIGN_OR_RETURN(trace::TraceHeader h, attach_header(pid));
  RELIVE_ASSIGN_OR_RETURN(trace::FileStore files,
                          trace::FileStore::open(trace::files_dir(o.trace_dir)));
  RELIVE_ASSIGN_OR_RETURN(auto sink, make_log_writer_sink(trace::events_path(o.trace_dir)));

  std::vector<int> held;  // outlives the guard, which re-sends them on failure
  AttachGuard guard;
  guard.pid = pid;
  guard.held = &held;
  RELIVE_RETURN_IF_ERROR(seize_all(pid, &guard, &held));
  const Regs r0 = guard.at_r0.front().r0;
  tracee::Task task(pid);
  RELIVE_ASSIGN_OR_RETURN(tracee::ProcessSetup setup, tracee::setup_process(task, false));
  guard.vdso = setup.vdso;
  held.insert(held.end(), setup.held_signals.begin(), setup.held_signals.end());
  const uint64_t insn = setup.vdso.syscall_insn;
  std::vector<HeldThread> others(guard.at_r0.begin() + 1, guard.at_r0.end());
  for (HeldThread& t : others) RELIVE_RETURN_IF_ERROR(read_thread_extras(&t, insn, &held));
  task.set_regs(r0);
  std::vector<pid_t> recreated;
  Result<pid_t> forked = fork_checkpoint_child(task, insn, r0, others, &recreated, &held);
  if (!forked.ok()) {
    task.set_regs(r0);
    return forked.status().with_context("checkpoint of process " + std::to_string(pid));
  }
  pid_t child = *forked;
  for (size_t i = 0; i < others.size(); ++i)
    h.other_threads.emplace_back(others[i].tid, recreated[i]);
  criu::DumpOptions dump;
  dump.pid = child;
  dump.images_dir = trace::checkpoint_dir(o.trace_dir);
  dump.shell_job = true;
  auto dumped = criu::dump(dump);
  // CRIU kills the child after a dump; after a failed one it may still sit stopped, and a
  // stopped child is never reaped.
  if (!dumped.ok()) ::kill(child, SIGKILL);
  Status reaped = reap_child(task, setup.vdso.syscall_insn, child, &held);
  task.set_regs(r0);
  if (!dumped.ok())
    return dumped.status().with_context("checkpoint of process " + std::to_string(pid));
  RELIVE_RETURN_IF_ERROR(reaped);
  RELIVE_RETURN_IF_ERROR(trace::write_header(o.trace_dir, h));
  // The other threads at a syscall-exit stop (a harmless call injected), where recording starts
  // them as it starts the first.
  for (const HeldThread& t : others) {
    tracee::Task tt(t.tid);
    {
      tracee::Injector inj(tt, tracee::Injector::At::kElsewhere, insn);
      RELIVE_RETURN_IF_ERROR(inj.call(SYS_getpid, {}).status());
      held.insert(held.end(), inj.held_signals().begin(), inj.held_signals().end());
    }
    tt.set_regs(t.r0);
  }
  guard.armed = false;

  // After the checkpoint, whose copy must keep the process's own CPU mask.
  cpu.bind_process(pid);
  // The fast path needs its calls let through and every other call stopped: syscall user
  // dispatch, which (unlike a seccomp filter) comes off again at detach. Without it (a kernel
  // older than 5.11), every call stops.
  RecordSession::Mode mode = RecordSession::Mode::kAllSyscalls;
  if (o.syscall_buffer) {
    // Per thread (it is a per-thread setting): in every one, or in none.
    std::vector<pid_t> all{pid};
    for (const HeldThread& t : others) all.push_back(t.tid);
    Status on = Status::Ok();
    size_t enabled = 0;
    for (; enabled < all.size() && on.ok(); ++enabled)
      on = tracee::enable_syscall_dispatch(tracee::Task(all[enabled]), tracee::Injector::At::kExit,
                                           insn, &held);
    if (on.ok()) {
      mode = RecordSession::Mode::kDispatch;
    } else {
      for (size_t i = 0; i + 1 < enabled; ++i)
        (void)tracee::disable_syscall_dispatch(tracee::Task(all[i]), tracee::Injector::At::kExit,
                                               insn, &held);
      spdlog::warn("no fast path for process {} ({}): every syscall stops", pid, on.to_string());
    }
  }
  SyscallCapture capture(&files, pid);
  RecordSession session(mode, sink.get(), &capture);
  session.set_syscall_buffer(o.syscall_buffer);
  session.set_stop_flag(&g_stop_requested);
  if (o.live) session.set_flush_interval(std::chrono::milliseconds(20));
  session.ignore_sigchld_from(child);
  session.set_vdso_patch(setup.vdso);
  session.set_spin_limit(std::chrono::milliseconds(o.spin_limit_ms));
  session.add_initial_thread(pid);
  for (const HeldThread& t : others) session.add_initial_thread(t.tid, /*leader=*/false);
  for (int sig : held) ::kill(pid, sig);  // arrived mid-injection: now they are recorded
  Result<int> status = session.run();
  Status finished = sink->finish();
  const RecordStats& st = session.stats();
  spdlog::debug(
      "recorded {} syscalls ({} through the syscall buffer, {} sites patched), {} signals",
      st.syscalls, st.buffered, st.sites_patched, st.signals);
  if (!status.ok()) return status.status();
  RELIVE_RETURN_IF_ERROR(finished);
  // A live trace (CR/TR's source) is shipped as it grows and dropped after: nothing to keep.
  if (!o.live) RELIVE_RETURN_IF_ERROR(files.sync());
  RecordResult r;
  r.wait_status = *status;
  r.events = sink->events();
  r.syscalls = session.stats().syscalls;
  r.signals = session.stats().signals;
  r.threads = session.stats().threads;
  return r;
}

}  // namespace relive::record
