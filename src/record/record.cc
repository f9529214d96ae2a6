// relive::record(): sets up the trace directory, starts (or attaches to) the program, and runs
// the RecordSession.
#include "relive/record.h"

#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "common/file_util.h"
#include "common/logging.h"
#include "record/attach.h"
#include "record/event_sink.h"
#include "record/host_facts.h"
#include "record/record_session.h"
#include "record/syscall_capture.h"
#include "trace/file_store.h"
#include "trace/trace_dir.h"
#include "trace/trace_writer.h"
#include "tracee/cpu_binding.h"
#include "tracee/launch.h"
#include "tracee/process_info.h"
#include "tracee/process_setup.h"
#include "tracee/tracer_tsc.h"

extern char** environ;

namespace relive {
namespace {

volatile pid_t g_program = 0;

// A terminal's Ctrl-C (SIGINT, SIGQUIT; si_code SI_KERNEL) goes to the whole foreground process
// group, so the program gets it itself. A signal that a process sent to relive (a supervisor's
// `kill -TERM`) is passed on to the program, which is recorded receiving it; relive ends with
// the program, as always.
void forward_to_program(int sig, siginfo_t* info, void*) {
  if (info != nullptr && info->si_code == SI_KERNEL) return;
  pid_t p = g_program;
  if (p > 0) ::kill(p, sig);
}

void forward_interrupts(pid_t program) {
  g_program = program;
  struct sigaction sa {};
  sa.sa_sigaction = forward_to_program;
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  for (int sig : {SIGINT, SIGQUIT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

Status prepare_trace_dir(const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec))
    return Status::InvalidArgument(dir + ": trace directory exists and is not empty");
  return make_dirs(dir);
}

Result<trace::TraceHeader> exec_header(const RecordOptions& o, trace::FileStore& files) {
  trace::TraceHeader h;
  h.start = trace::StartKind::kExec;
  RELIVE_ASSIGN_OR_RETURN(std::string program, tracee::resolve_program(o.argv[0]));
  h.program = std::filesystem::absolute(program).lexically_normal().string();
  h.argv = o.argv;
  for (char** e = environ; *e != nullptr; ++e) h.env.emplace_back(*e);
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) != nullptr) h.cwd = cwd;
  RELIVE_ASSIGN_OR_RETURN(h.exe_copy, files.add(h.program));
  RELIVE_ASSIGN_OR_RETURN(h.interp_path, tracee::elf_interpreter(h.program));
  if (!h.interp_path.empty()) {
    RELIVE_ASSIGN_OR_RETURN(h.interp_copy, files.add(h.interp_path));
  }
  record::fill_host_facts(&h);
  return h;
}

RecordResult result_of(int status, const record::RecordSession& s, uint64_t events) {
  RecordResult r;
  r.wait_status = status;
  r.events = events;
  r.syscalls = s.stats().syscalls;
  r.signals = s.stats().signals;
  r.threads = s.stats().threads;
  r.preemptions = s.stats().preemptions;
  r.buffered = s.stats().buffered;
  return r;
}

Result<RecordResult> record_exec(const RecordOptions& o) {
  RELIVE_RETURN_IF_ERROR(prepare_trace_dir(o.trace_dir));
  RELIVE_ASSIGN_OR_RETURN(trace::FileStore files,
                          trace::FileStore::open(trace::files_dir(o.trace_dir)));
  RELIVE_ASSIGN_OR_RETURN(trace::TraceHeader h, exec_header(o, files));
  RELIVE_ASSIGN_OR_RETURN(auto sink, record::make_log_writer_sink(trace::events_path(o.trace_dir)));
  // After the log writer started (it keeps its own CPUs), before the program (it inherits).
  RELIVE_ASSIGN_OR_RETURN(tracee::CpuBinding cpu, tracee::CpuBinding::bind_caller(o.cpu));
  tracee::TracerTscGuard tsc;  // the program's rdtsc is trapped: the tracer's too (tracer_tsc.h)
  tracee::LaunchSpec spec{h.program, h.argv, h.env, h.cwd, true, {}, -1};
  RELIVE_ASSIGN_OR_RETURN(pid_t pid, tracee::launch_traced(spec));
  tracee::Task task(pid);
  auto setup = tracee::setup_process(task, true);
  if (!setup.ok()) {
    ::kill(pid, SIGKILL);
    return setup.status();
  }
  h.at_random_addr = setup->auxv.at_random;
  RELIVE_ASSIGN_OR_RETURN(h.at_random, task.read_mem(h.at_random_addr, 16));
  h.initial_tid = pid;
  RELIVE_RETURN_IF_ERROR(trace::write_header(o.trace_dir, h));
  forward_interrupts(pid);
  record::SyscallCapture capture(&files);
  record::RecordSession session(record::RecordSession::Mode::kSeccomp, sink.get(), &capture);
  session.set_spin_limit(std::chrono::milliseconds(o.spin_limit_ms));
  session.set_syscall_buffer(o.syscall_buffer);
  session.add_initial_thread(pid);
  Result<int> status = session.run();
  Status finished = sink->finish();
  if (!status.ok()) return status.status();
  RELIVE_RETURN_IF_ERROR(finished);
  RELIVE_RETURN_IF_ERROR(files.sync());
  const record::RecordStats& st = session.stats();
  spdlog::debug(
      "recorded {} syscalls ({} through the syscall buffer), {} signals ({} more merged into "
      "one pending), {} rdtsc, {} threads, {} preemptions",
      st.syscalls, st.buffered, st.signals, st.signals_merged, st.rdtsc, st.threads,
      st.preemptions);
  return result_of(*status, session, sink->events());
}

}  // namespace

Result<RecordResult> record_trace(const RecordOptions& o) {
  if (o.attach_pid > 0) return record::record_attached(o);
  if (o.argv.empty()) return Status::InvalidArgument("nothing to record: give a program or --pid");
  return record_exec(o);
}

int exit_code_of(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;
}

}  // namespace relive
