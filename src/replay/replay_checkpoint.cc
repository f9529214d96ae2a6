// Replaying from a checkpoint (relive record --pid): CRIU restores the frozen copy-on-write
// image; relive seizes it, patches its vDSO again (CRIU maps the host's own) and replays every
// syscall from the log, stopping at each one (the image carries no seccomp filter).
#include "replay/replay_checkpoint.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ptrace.h>

#include <filesystem>

#include "drivers/criu/criu.h"
#include "replay/replay_session.h"
#include "trace/trace_dir.h"
#include "tracee/cpu_binding.h"
#include "tracee/launch.h"
#include "tracee/process_setup.h"
#include "tracee/syscall_dispatch.h"

namespace relive::replay {

using tracee::Stop;

Status seize_restored(pid_t pid) {
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, tracee::trace_options(false)) != 0)
    return PosixError("seize restored process " + std::to_string(pid), errno);
  if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0)
    return PosixError("PTRACE_INTERRUPT", errno);
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, tracee::wait_stop(pid));
    if (got.second.kind == Stop::Kind::kExited) return Status::IoError("restored process died");
    if (got.second.kind == Stop::Kind::kGroupStop) return Status::Ok();
    RELIVE_RETURN_IF_ERROR(tracee::Task(pid).cont());
  }
}

// Patched syscall sites and the fast path then replay as recorded; without it every call stops.
bool turn_on_dispatch(const tracee::Task& task) {
  std::vector<int> held;  // this run's own signals: dropped
  Status on = tracee::enable_syscall_dispatch(task, tracee::Injector::At::kElsewhere,
                                              tracee::kTrampolineSyscallInsn, &held);
  if (!on.ok()) spdlog::warn("replaying with a stop at every syscall: {}", on.to_string());
  return on.ok();
}

Result<ReplayResult> replay_checkpoint(trace::TraceReader& reader, const ReplayOptions& o) {
  const trace::TraceHeader& h = reader.header();
  // Before the restore, so that a bad --cpu leaves nothing behind.
  RELIVE_ASSIGN_OR_RETURN(tracee::CpuBinding cpu, tracee::CpuBinding::bind_caller(o.cpu));
  criu::RestoreOptions ro;
  // Absolute: CRIU resolves relative paths from inside the images dir.
  ro.images_dir = std::filesystem::absolute(trace::checkpoint_dir(o.trace_dir)).string();
  ro.detached = true;
  ro.shell_job = true;
  ro.pidfile = ro.images_dir + "/restored.pid";
  RELIVE_ASSIGN_OR_RETURN(pid_t pid, criu::restore(ro));
  Status st = seize_restored(pid);
  tracee::Task task(pid);
  if (st.ok()) {
    auto setup = tracee::setup_process(task, false, /*map_scratch=*/false);
    st = setup.status();
  }
  ReplaySession::Mode mode = ReplaySession::Mode::kAllSyscalls;
  if (st.ok() && turn_on_dispatch(task)) mode = ReplaySession::Mode::kDispatch;
  if (!st.ok()) {
    ::kill(pid, SIGKILL);
    return st;
  }
  cpu.bind_process(pid);
  ReplaySession session(mode, &reader, {o.stdout_fd, o.stderr_fd});
  session.add_initial_thread(pid, h.initial_tid);
  session.set_syscall_buffer(o.syscall_buffer);
  Result<int> status = session.run();
  ::kill(pid, SIGKILL);  // a detached recording leaves the replayed process at its last state
  if (!status.ok()) return status.status();
  return ReplayResult{*status, session.events(), session.buffered()};
}

}  // namespace relive::replay
