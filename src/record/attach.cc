// relive record --pid: attach to a running, single-threaded process without harming it.
//
// 1. Seize and interrupt it; if it was inside a syscall, rewind it to re-issue that syscall
//    (state R0, a clean syscall boundary).
//    If it stopped inside the vDSO, step it out first: the patch rewrites vDSO entry points.
// 2. Patch its vDSO and map the scratch and trampoline pages (as a launched process gets).
// 3. Inject a fork (exit signal 0, so the program's own wait() never sees it). The child is a
//    copy-on-write image of R0: its descriptors are closed, its registers set to R0, and it is
//    left stopped for CRIU to dump into the trace's checkpoint/ directory.
// 4. Reap the dumped child from inside the original, restore R0, and record it from there,
//    stopping at every syscall so that recording can end with a clean detach, which puts the
//    vDSO's original entry points back.
#include "record/attach.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>

#include "common/file_util.h"
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

Status check_single_threaded(pid_t pid) {
  std::error_code ec;
  auto tasks = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
  if (ec) return Status::NotFound("no process " + std::to_string(pid));
  size_t n = std::distance(begin(tasks), end(tasks));
  if (n != 1)
    return Status::Unsupported(
        fmt::format("process {} has {} threads; --pid attaches to single-threaded processes (the "
                    "checkpoint fork copies only one thread)",
                    pid, n));
  return Status::Ok();
}

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

// Forks the checkpoint child from inside the stopped original. Returns the child, stopped.
Result<pid_t> fork_checkpoint_child(const tracee::Task& task, uint64_t syscall_insn, const Regs& r0,
                                    std::vector<int>* held) {
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
  c.set_regs(r0);
  if (::ptrace(PTRACE_DETACH, c.tid(), nullptr, SIGSTOP) != 0)
    return PosixError("detach child", errno);
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
  Regs r0{};
  bool have_r0 = false;
  std::optional<tracee::VdsoPatch> vdso;
  const std::vector<int>* held = nullptr;  // signals relive held back: the process's own
  ~AttachGuard() {
    if (!armed) return;
    if (vdso) (void)tracee::unpatch_vdso(tracee::Task(pid), *vdso);
    if (have_r0) tracee::Task(pid).set_regs(r0);
    ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    if (held != nullptr)
      for (int sig : *held) ::kill(pid, sig);
  }
};

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
  RELIVE_RETURN_IF_ERROR(check_single_threaded(pid));
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
  RELIVE_RETURN_IF_ERROR(seize(pid).status());
  RELIVE_ASSIGN_OR_RETURN(Regs r0, step_out_of_vdso(pid, &held));
  guard.r0 = r0, guard.have_r0 = true;
  tracee::Task task(pid);
  RELIVE_ASSIGN_OR_RETURN(tracee::ProcessSetup setup, tracee::setup_process(task, false));
  guard.vdso = setup.vdso;
  held.insert(held.end(), setup.held_signals.begin(), setup.held_signals.end());
  RELIVE_ASSIGN_OR_RETURN(pid_t child,
                          fork_checkpoint_child(task, setup.vdso.syscall_insn, r0, &held));
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
  guard.armed = false;

  // After the checkpoint, whose copy must keep the process's own CPU mask.
  cpu.bind_process(pid);
  // The fast path needs its calls let through and every other call stopped: syscall user
  // dispatch, which (unlike a seccomp filter) comes off again at detach. Without it (a kernel
  // older than 5.11), every call stops.
  RecordSession::Mode mode = RecordSession::Mode::kAllSyscalls;
  if (o.syscall_buffer) {
    Status on = tracee::enable_syscall_dispatch(task, tracee::Injector::At::kExit,
                                                setup.vdso.syscall_insn, &held);
    if (on.ok())
      mode = RecordSession::Mode::kDispatch;
    else
      spdlog::warn("no fast path for process {} ({}): every syscall stops", pid, on.to_string());
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
