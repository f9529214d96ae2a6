#include "tracee/launch.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/scoped_fd.h"
#include "tracee/seccomp_filter.h"
#include "tracee/task.h"

namespace relive::tracee {
namespace {

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the child: report what failed through the error pipe and exit. Only async-signal-safe calls.
[[noreturn]] void child_fail(int err_fd, const char* what) {
  int err = errno;
  (void)!::write(err_fd, &err, sizeof err);
  (void)!::write(err_fd, what, strlen(what));
  ::_exit(127);
}

[[noreturn]] void child_main(const LaunchSpec& spec, int go_fd, int err_fd,
                             const std::vector<sock_filter>& filter, char** argv, char** envp) {
  ::personality(ADDR_NO_RANDOMIZE);
  ::prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (spec.stdin_fd >= 0 && ::dup2(spec.stdin_fd, 0) < 0) child_fail(err_fd, "dup2 stdin");
  if (!spec.bind_mounts.empty()) {
    if (::unshare(CLONE_NEWNS) != 0) child_fail(err_fd, "unshare(CLONE_NEWNS)");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      child_fail(err_fd, "make / private");
    for (const auto& [src, dst] : spec.bind_mounts)
      if (::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) != 0)
        child_fail(err_fd, dst.c_str());
  }
  if (!spec.cwd.empty()) (void)!::chdir(spec.cwd.c_str());
  char go;
  if (::read(go_fd, &go, 1) != 1) ::_exit(127);  // the tracer died before seizing us
  if (spec.seccomp && install_seccomp_filter(filter) != 0) child_fail(err_fd, "install seccomp");
  ::execve(spec.path.c_str(), argv, envp);
  child_fail(err_fd, "execve");
}

Status child_error(int err_fd, const std::string& path) {
  int err = 0;
  char what[256] = {};
  if (::read(err_fd, &err, sizeof err) != sizeof err) return Status::Ok();
  ssize_t n = ::read(err_fd, what, sizeof what - 1);
  std::string step(what, n > 0 ? static_cast<size_t>(n) : 0);
  if (step == "execve") return PosixError("cannot execute " + path, err);
  return PosixError("starting " + path + " (" + step + ")", err);
}

}  // namespace

long trace_options(bool seccomp) {
  long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
              PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
  if (seccomp) opts |= PTRACE_O_TRACESECCOMP;
  return opts;
}

Result<pid_t> launch_traced(const LaunchSpec& spec) {
  int go[2], err[2];
  if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  ScopedFd go_r(go[0]), go_w(go[1]), err_r(err[0]), err_w(err[1]);
  std::vector<sock_filter> filter = build_seccomp_filter();
  std::vector<char*> argv = c_strings(spec.argv), envp = c_strings(spec.env);
  pid_t pid = ::fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) child_main(spec, go_r.get(), err_w.get(), filter, argv.data(), envp.data());
  go_r.reset();
  err_w.reset();
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, trace_options(spec.seccomp)) != 0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return PosixError("PTRACE_SEIZE", e);
  }
  (void)!::write(go_w.get(), "g", 1);
  Task task(pid);
  bool exec_seen = false;
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, wait_stop(pid));
    const Stop& s = got.second;
    if (s.kind == Stop::Kind::kExited) {
      Status st = child_error(err_r.get(), spec.path);
      return st.ok() ? Status::IoError("program exited before it started") : st;
    }
    if (s.kind == Stop::Kind::kExec) {
      exec_seen = true;
      RELIVE_RETURN_IF_ERROR(task.syscall());
      continue;
    }
    if (exec_seen && s.kind == Stop::Kind::kSyscallExit) return pid;
    // The execve's own seccomp or entry stop, and stops before exec: let them run.
    int sig = s.kind == Stop::Kind::kSignal ? s.signo : 0;
    RELIVE_RETURN_IF_ERROR(exec_seen ? task.syscall(sig) : task.cont(sig));
  }
}

}  // namespace relive::tracee
