#include "ha/workload_launch.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/file_util.h"
#include "common/scoped_fd.h"
#include "common/subprocess.h"

namespace relive::ha {

Result<pid_t> start_workload(const WorkloadConfig& w, const std::string& netns_path) {
  RELIVE_RETURN_IF_ERROR(make_dirs(w.directory));
  std::string log = w.directory + "/" + kWorkloadLog;
  ScopedFd out(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!out.valid()) return PosixError("open " + log, errno);
  SpawnOptions o;
  o.netns = netns_path;
  o.cwd = w.directory;
  o.output_fd = out.get();
  o.new_session = true;          // CRIU needs the session inside the dumped tree
  o.clone_flags = CLONE_NEWPID;  // the workload is PID 1 of its own PID namespace
  // Nothing of relived's (sockets, pipes, the replication channel) leaks into the workload
  // (Subprocess closes every other fd): CRIU would dump it as the workload's.
  Result<Subprocess> child = Subprocess::spawn(w.command, o);
  if (!child.ok()) {
    return child.status().with_context("could not start the workload in a new PID namespace");
  }
  return child->release();  // killed and reaped by kill_workload
}

bool workload_alive(pid_t pid) {
  if (pid <= 0) return false;
  siginfo_t si{};
  // WNOWAIT: look without reaping, so that kill_workload can still reap it.
  if (::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
    return si.si_pid != pid;
  }
  return ::kill(pid, 0) == 0;  // not our child (cannot happen with the subreaper, but be safe)
}

void kill_workload(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
    if (::kill(pid, 0) != 0 && errno == ESRCH) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace relive::ha
