#include "ha/workload_launch.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/file_util.h"
#include "common/scoped_fd.h"

namespace relive::ha {

Result<pid_t> start_workload(const WorkloadConfig& w, const std::string& netns_path) {
  RELIVE_RETURN_IF_ERROR(make_dirs(w.directory));
  // Everything the children need is prepared here: after fork() in a threaded process only
  // async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const auto& a : w.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::string log = w.directory + "/" + kWorkloadLog;
  ScopedFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return PosixError("open " + netns_path, errno);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  ScopedFd rd(p[0]), wr(p[1]);
  pid_t mid = ::fork();
  if (mid < 0) return PosixError("fork", errno);
  if (mid == 0) {
    if (::setns(ns.get(), CLONE_NEWNET) != 0 || ::unshare(CLONE_NEWPID) != 0) ::_exit(126);
    pid_t init = ::fork();
    if (init == 0) {
      ::setsid();
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (in < 0 || out < 0 || ::chdir(w.directory.c_str()) != 0) ::_exit(126);
      ::dup2(in, 0), ::dup2(out, 1), ::dup2(out, 2);
      // Nothing of relived's (sockets, pipes, the replication channel) may leak into the
      // workload: CRIU would dump it as the workload's.
      ::syscall(SYS_close_range, 3, ~0u, 0);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    (void)!::write(wr.get(), &init, sizeof init);
    ::_exit(init > 0 ? 0 : 126);
  }
  wr.reset();
  pid_t workload = -1;
  ssize_t n = ::read(rd.get(), &workload, sizeof workload);
  int st = 0;
  ::waitpid(mid, &st, 0);
  if (n != sizeof workload || workload <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    return Status::IoError("could not start the workload in a new PID namespace");
  }
  return workload;
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
