// Replaying from a checkpoint (relive record --pid): CRIU restores the frozen copy-on-write
// image; relive seizes it, patches its vDSO again (CRIU maps the host's own) and replays every
// syscall from the log, stopping at each one (the image carries no seccomp filter).
#include "replay/replay_checkpoint.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ptrace.h>

#include <algorithm>
#include <filesystem>

#include "common/file_util.h"
#include "common/process_tree.h"
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

namespace {

// The thread's id in its own PID namespace (the last NSpid entry of its status).
Result<pid_t> tid_in_namespace(pid_t tid) {
  RELIVE_ASSIGN_OR_RETURN(std::string status, read_file(fmt::format("/proc/{}/status", tid)));
  size_t at = status.find("\nNSpid:");
  if (at == std::string::npos) return static_cast<pid_t>(tid);
  size_t end = status.find('\n', at + 1);
  std::string line = status.substr(at + 7, end - at - 7);
  size_t last = line.find_last_of(" \t");
  return static_cast<pid_t>(std::atoi(line.c_str() + (last == std::string::npos ? 0 : last + 1)));
}

}  // namespace

Result<std::vector<std::pair<pid_t, int32_t>>> seize_restored_threads(pid_t pid,
                                                                      const trace::TraceHeader& h) {
  std::vector<std::pair<pid_t, int32_t>> out;
  for (pid_t tid : threads_of(pid)) {
    if (tid == pid) continue;
    RELIVE_ASSIGN_OR_RETURN(pid_t ns_tid, tid_in_namespace(tid));
    auto it = std::find_if(h.other_threads.begin(), h.other_threads.end(),
                           [&](const auto& m) { return m.second == ns_tid; });
    if (it == h.other_threads.end())
      return Status::Corruption(
          fmt::format("restored thread {} is not one the trace's header names", ns_tid));
    RELIVE_RETURN_IF_ERROR(seize_restored(tid));
    out.emplace_back(tid, it->first);
  }
  if (out.size() != h.other_threads.size())
    return Status::Corruption(fmt::format("the checkpoint restored {} threads, its header names {}",
                                          out.size() + 1, h.other_threads.size() + 1));
  return out;
}

ReplaySession::Mode turn_on_dispatch_everywhere(
    pid_t pid, const std::vector<std::pair<pid_t, int32_t>>& others) {
  if (!turn_on_dispatch(tracee::Task(pid))) return ReplaySession::Mode::kAllSyscalls;
  for (size_t i = 0; i < others.size(); ++i) {
    if (turn_on_dispatch(tracee::Task(others[i].first))) continue;
    std::vector<int> held;
    for (size_t j = 0; j <= i; ++j) {
      pid_t tid = j == 0 ? pid : others[j - 1].first;
      (void)tracee::disable_syscall_dispatch(tracee::Task(tid), tracee::Injector::At::kElsewhere,
                                             tracee::kTrampolineSyscallInsn, &held);
    }
    return ReplaySession::Mode::kAllSyscalls;
  }
  return ReplaySession::Mode::kDispatch;
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
  std::vector<std::pair<pid_t, int32_t>> others;
  if (st.ok()) {
    auto seized = seize_restored_threads(pid, h);
    if (seized.ok())
      others = std::move(*seized);
    else
      st = seized.status();
  }
  if (!st.ok()) {
    ::kill(pid, SIGKILL);
    return st;
  }
  ReplaySession::Mode mode = turn_on_dispatch_everywhere(pid, others);
  cpu.bind_process(pid);
  ReplaySession session(mode, &reader, {o.stdout_fd, o.stderr_fd});
  session.add_initial_thread(pid, h.initial_tid);
  for (const auto& [tid, rec] : others) session.add_initial_thread(tid, rec, /*leader=*/false);
  session.set_syscall_buffer(o.syscall_buffer);
  Result<int> status = session.run();
  ::kill(pid, SIGKILL);  // a detached recording leaves the replayed process at its last state
  if (!status.ok()) return status.status();
  return ReplayResult{*status, session.events(), session.buffered()};
}

}  // namespace relive::replay
