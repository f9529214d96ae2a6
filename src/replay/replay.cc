// relive::replay_trace(): prepares the replayed process exactly as the recorded one started
// (same program bytes, environment, address layout and AT_RANDOM), then runs ReplaySession.
#include "relive/replay.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/file_util.h"
#include "common/hash.h"
#include "common/scoped_fd.h"
#include "replay/replay_checkpoint.h"
#include "replay/replay_session.h"
#include "trace/file_store.h"
#include "trace/trace_dir.h"
#include "trace/trace_reader.h"
#include "tracee/cpu_binding.h"
#include "tracee/launch.h"
#include "tracee/process_setup.h"
#include "tracee/tracer_tsc.h"

namespace relive {
namespace {

// The saved copy must be intact; when the host's file differs (another version, or gone), the
// copy is bind-mounted over its path in the replay's private mount namespace.
Status plan_file(const trace::FileStore& files, const std::string& host_path,
                 const std::string& copy,
                 std::vector<std::pair<std::string, std::string>>* mounts) {
  Result<std::string> saved = files.verify(copy);
  if (!saved.ok())
    return saved.status().with_context("saved copy of " + host_path + " fails its checksum");
  auto host = read_file(host_path);
  if (host.ok() && hash128_hex(*host) == copy) return Status::Ok();
  if (!host.ok()) {
    // Create an empty file to mount over; its directory must exist.
    ScopedFd fd(::open(host_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0755));
    if (!fd.valid())
      return Status::NotFound(host_path + " is gone and cannot be recreated for the replay");
  }
  mounts->emplace_back(*saved, host_path);
  return Status::Ok();
}

Result<pid_t> start_exec(const trace::TraceReader& reader) {
  const trace::TraceHeader& h = reader.header();
  tracee::LaunchSpec spec;
  spec.path = h.program;
  spec.argv = h.argv;
  spec.env = h.env;
  std::error_code ec;
  spec.cwd = std::filesystem::is_directory(h.cwd, ec) ? h.cwd : "/";
  RELIVE_ASSIGN_OR_RETURN(trace::FileStore files,
                          trace::FileStore::open(trace::files_dir(reader.dir())));
  RELIVE_RETURN_IF_ERROR(plan_file(files, h.program, h.exe_copy, &spec.bind_mounts));
  if (!h.interp_path.empty())
    RELIVE_RETURN_IF_ERROR(plan_file(files, h.interp_path, h.interp_copy, &spec.bind_mounts));
  ScopedFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  spec.stdin_fd = devnull.get();  // every read is replayed from the log, never from a terminal
  return tracee::launch_traced(spec);
}

Status prepare_exec(pid_t pid, const trace::TraceHeader& h) {
  tracee::Task task(pid);
  RELIVE_ASSIGN_OR_RETURN(tracee::ProcessSetup setup, tracee::setup_process(task, true));
  if (setup.auxv.at_random != h.at_random_addr)
    return Status::Divergence(
        "the replayed process's initial stack differs from the recording's "
        "(different kernel or environment size?)");
  if (h.at_random.size() != 16)
    return Status::Corruption("trace header: AT_RANDOM is not 16 bytes");
  return task.write_mem(h.at_random_addr, h.at_random.data(), 16);
}

Result<ReplayResult> replay_exec(trace::TraceReader& reader, const ReplayOptions& o) {
  RELIVE_ASSIGN_OR_RETURN(tracee::CpuBinding cpu, tracee::CpuBinding::bind_caller(o.cpu));
  tracee::TracerTscGuard tsc;  // the program's rdtsc is trapped: the tracer's too (tracer_tsc.h)
  RELIVE_ASSIGN_OR_RETURN(pid_t pid, start_exec(reader));
  Status prepared = prepare_exec(pid, reader.header());
  if (!prepared.ok()) {
    ::kill(pid, SIGKILL);
    return prepared;
  }
  replay::ReplaySession session(replay::ReplaySession::Mode::kSeccomp, &reader,
                                {o.stdout_fd, o.stderr_fd});
  session.add_initial_thread(pid, reader.header().initial_tid);
  session.set_syscall_buffer(o.syscall_buffer);
  Result<int> status = session.run();
  if (!status.ok()) {
    ::kill(pid, SIGKILL);
    return status.status();
  }
  return ReplayResult{*status, session.events(), session.buffered()};
}

}  // namespace

Result<ReplayResult> replay_trace(const ReplayOptions& options) {
  // Resolved once, here: the replayed program runs in the recorded working directory, and the
  // saved files it maps are opened from inside it (replay_session.cc).
  ReplayOptions o = options;
  std::error_code ec;
  o.trace_dir = std::filesystem::absolute(o.trace_dir, ec).lexically_normal().string();
  if (ec) return PosixError("resolve " + options.trace_dir, ec.value());
  RELIVE_ASSIGN_OR_RETURN(trace::TraceReader reader, trace::TraceReader::open(o.trace_dir));
  if (reader.header().start == trace::StartKind::kCheckpoint)
    return replay::replay_checkpoint(reader, o);
  return replay_exec(reader, o);
}

}  // namespace relive
