#include "tracee/task.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <string>

#include "common/check.h"
#include "common/scoped_fd.h"
#include "tracee/tracer_tsc.h"

namespace relive::tracee {

Stop decode_stop(int st) {
  Stop s;
  s.status = st;
  if (WIFEXITED(st) || WIFSIGNALED(st)) return s;
  int sig = WSTOPSIG(st);
  int event = st >> 16;
  s.signo = sig;
  if (sig == (SIGTRAP | 0x80)) {
    s.kind = Stop::Kind::kSyscallEntry;  // refined to exit by the caller via syscall info
    return s;
  }
  switch (event) {
    case PTRACE_EVENT_SECCOMP:
      s.kind = Stop::Kind::kSeccomp;
      break;
    case PTRACE_EVENT_CLONE:
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
      s.kind = Stop::Kind::kClone;
      break;
    case PTRACE_EVENT_EXEC:
      s.kind = Stop::Kind::kExec;
      break;
    case PTRACE_EVENT_EXIT:
      s.kind = Stop::Kind::kExitEvent;
      break;
    case PTRACE_EVENT_STOP:
      s.kind = Stop::Kind::kGroupStop;
      break;
    default:
      s.kind = Stop::Kind::kSignal;
      break;
  }
  return s;
}

const char* stop_kind_name(Stop::Kind kind) {
  switch (kind) {
    case Stop::Kind::kSyscallEntry:
      return "syscall-entry";
    case Stop::Kind::kSeccomp:
      return "seccomp";
    case Stop::Kind::kSyscallExit:
      return "syscall-exit";
    case Stop::Kind::kSignal:
      return "signal";
    case Stop::Kind::kClone:
      return "clone";
    case Stop::Kind::kExec:
      return "exec";
    case Stop::Kind::kExitEvent:
      return "exit-event";
    case Stop::Kind::kGroupStop:
      return "group-stop";
    case Stop::Kind::kExited:
      return "exited";
  }
  return "?";
}

namespace {

// Blocks SIGCHLD for its lifetime so that a stop reported between waitpid and sigtimedwait is
// not lost (with SIGCHLD's default action, an unblocked one is discarded).
class BlockSigchld {
 public:
  BlockSigchld() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &s, &old_);
  }
  ~BlockSigchld() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockSigchld(const BlockSigchld&) = delete;
  BlockSigchld& operator=(const BlockSigchld&) = delete;

 private:
  sigset_t old_;
};

void fill_syscall_info(pid_t tid, Stop* s) {
  __ptrace_syscall_info info{};
  if (::ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof info, &info) <= 0) return;
  if (info.op == PTRACE_SYSCALL_INFO_EXIT) {
    s->kind = Stop::Kind::kSyscallExit;
    s->rval = info.exit.rval;
    return;
  }
  const auto* args = info.op == PTRACE_SYSCALL_INFO_SECCOMP ? info.seccomp.args : info.entry.args;
  s->nr =
      static_cast<int>(info.op == PTRACE_SYSCALL_INFO_SECCOMP ? info.seccomp.nr : info.entry.nr);
  for (int i = 0; i < 6; ++i) s->args[i] = args[i];
}

}  // namespace

Result<std::pair<pid_t, Stop>> wait_stop(pid_t tid, const volatile int* interrupted) {
  for (;;) {
    int st = 0;
    pid_t got = ::waitpid(tid, &st, __WALL);
    if (got < 0 && errno == EINTR) {
      if (interrupted != nullptr && *interrupted) return Status::Aborted("interrupted");
      continue;
    }
    if (got < 0) return PosixError("waitpid", errno);
    Stop s = decode_stop(st);
    if (s.kind == Stop::Kind::kSyscallEntry || s.kind == Stop::Kind::kSeccomp)
      fill_syscall_info(got, &s);
    return std::make_pair(got, s);
  }
}

Result<std::optional<std::pair<pid_t, Stop>>> wait_stop_for(pid_t tid,
                                                            std::chrono::milliseconds timeout,
                                                            const volatile int* interrupted) {
  using Clock = std::chrono::steady_clock;
  auto deadline = kernel_steady_now() + timeout;
  BlockSigchld blocked;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  for (;;) {
    int st = 0;
    pid_t got = ::waitpid(tid, &st, __WALL | WNOHANG);
    if (got < 0 && errno != EINTR) return PosixError("waitpid", errno);
    if (got > 0) {
      Stop s = decode_stop(st);
      if (s.kind == Stop::Kind::kSyscallEntry || s.kind == Stop::Kind::kSeccomp)
        fill_syscall_info(got, &s);
      return std::optional<std::pair<pid_t, Stop>>(std::make_pair(got, s));
    }
    auto left = deadline - kernel_steady_now();
    if (left <= Clock::duration::zero()) return std::optional<std::pair<pid_t, Stop>>();
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    if (::sigtimedwait(&chld, nullptr, &ts) < 0 && errno == EINTR && interrupted != nullptr &&
        *interrupted)
      return Status::Aborted("interrupted");
  }
}

Regs Task::regs() const {
  Regs r{};
  long rc = ::ptrace(PTRACE_GETREGS, tid_, nullptr, &r);
  RELIVE_CHECK(rc == 0, "PTRACE_GETREGS on {} failed: errno {}", tid_, errno);
  return r;
}

Result<Regs> Task::try_regs() const {
  Regs r{};
  if (::ptrace(PTRACE_GETREGS, tid_, nullptr, &r) != 0)
    return PosixError(fmt::format("PTRACE_GETREGS on {}", tid_), errno);
  return r;
}

void Task::set_regs(const Regs& r) const {
  long rc = ::ptrace(PTRACE_SETREGS, tid_, nullptr, &r);
  RELIVE_CHECK(rc == 0, "PTRACE_SETREGS on {} failed: errno {}", tid_, errno);
}

Status Task::read_mem(uint64_t addr, void* buf, size_t len) const {
  if (len == 0) return Status::Ok();
  iovec local{buf, len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = ::process_vm_readv(tid_, &local, 1, &remote, 1, 0);
  if (n == static_cast<ssize_t>(len)) return Status::Ok();
  // Fall back to /proc/pid/mem, which also reads pages process_vm_readv refuses (PROT_NONE).
  ScopedFd fd(::open(("/proc/" + std::to_string(tid_) + "/mem").c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.valid() &&
      ::pread(fd.get(), buf, len, static_cast<off_t>(addr)) == static_cast<ssize_t>(len))
    return Status::Ok();
  return Status::IoError(
      fmt::format("cannot read {} bytes at {:#x} in thread {}", len, addr, tid_));
}

Result<std::string> Task::read_mem(uint64_t addr, size_t len) const {
  std::string out(len, '\0');
  RELIVE_RETURN_IF_ERROR(read_mem(addr, out.data(), len));
  return out;
}

Status Task::write_mem(uint64_t addr, const void* buf, size_t len) const {
  if (len == 0) return Status::Ok();
  iovec local{const_cast<void*>(buf), len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  if (::process_vm_writev(tid_, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len))
    return Status::Ok();
  // /proc/pid/mem writes through read-only mappings (FOLL_FORCE), e.g. the vDSO.
  ScopedFd fd(::open(("/proc/" + std::to_string(tid_) + "/mem").c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.valid() &&
      ::pwrite(fd.get(), buf, len, static_cast<off_t>(addr)) == static_cast<ssize_t>(len))
    return Status::Ok();
  return Status::IoError(
      fmt::format("cannot write {} bytes at {:#x} in thread {}", len, addr, tid_));
}

Result<std::string> Task::read_c_string(uint64_t addr, size_t max_len) const {
  std::string out;
  char chunk[256];
  while (out.size() < max_len) {
    // Read up to the end of the page so a string that ends before an unmapped page works.
    size_t to_page_end = 4096 - ((addr + out.size()) & 4095);
    size_t n = std::min(sizeof chunk, to_page_end);
    RELIVE_RETURN_IF_ERROR(read_mem(addr + out.size(), chunk, n));
    for (size_t i = 0; i < n; ++i) {
      if (chunk[i] == '\0') return out;
      out.push_back(chunk[i]);
    }
  }
  return Status::InvalidArgument("string longer than " + std::to_string(max_len));
}

Status Task::cont(int sig) const {
  if (::ptrace(PTRACE_CONT, tid_, nullptr, sig) != 0) return PosixError("PTRACE_CONT", errno);
  return Status::Ok();
}

Status Task::syscall(int sig) const {
  if (::ptrace(PTRACE_SYSCALL, tid_, nullptr, sig) != 0) return PosixError("PTRACE_SYSCALL", errno);
  return Status::Ok();
}

uint64_t Task::event_msg() const {
  unsigned long msg = 0;
  ::ptrace(PTRACE_GETEVENTMSG, tid_, nullptr, &msg);
  return msg;
}

Status Task::get_siginfo(std::string* info) const {
  siginfo_t si{};
  if (::ptrace(PTRACE_GETSIGINFO, tid_, nullptr, &si) != 0) return PosixError("GETSIGINFO", errno);
  info->assign(reinterpret_cast<const char*>(&si), sizeof si);
  return Status::Ok();
}

Status Task::set_siginfo(const std::string& info) const {
  siginfo_t si{};
  if (info.size() != sizeof si) return Status::Corruption("siginfo of wrong size");
  std::memcpy(&si, info.data(), sizeof si);
  if (::ptrace(PTRACE_SETSIGINFO, tid_, nullptr, &si) != 0) return PosixError("SETSIGINFO", errno);
  return Status::Ok();
}

}  // namespace relive::tracee
