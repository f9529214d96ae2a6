#include "dirty/seized_thread.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <filesystem>
#include <string_view>

#include "common/file_util.h"
#include "common/process_tree.h"
#include "tracee/process_info.h"

namespace relive::dirty {
namespace {

using tracee::Stop;

// Kernel-internal restart codes a syscall interrupted by a stop leaves in rax.
constexpr int64_t kErestartSys = -512, kErestartNoIntr = -513, kErestartNoHand = -514;
constexpr int64_t kErestartRestartBlock = -516;

std::string proc(pid_t pid) { return "/proc/" + std::to_string(pid); }

// The thread's state letter ('R', 'S', 'T', 'Z', ...; 'X' when it is gone).
char thread_state(pid_t tid) {
  char s = task_state(tid);
  return s != '\0' ? s : 'X';
}

// The leader unless it has exited (a zombie leader cannot be stopped), else any live thread.
Result<pid_t> live_thread(pid_t pid) {
  std::error_code ec;
  if (!std::filesystem::exists(proc(pid), ec))
    return Status::NotFound(fmt::format("no process {}", pid));
  char s = thread_state(pid);
  if (s != 'Z' && s != 'X') return pid;
  for (const auto& t : std::filesystem::directory_iterator(proc(pid) + "/task", ec)) {
    pid_t tid = std::stoi(t.path().filename().string());
    s = thread_state(tid);
    if (s != 'Z' && s != 'X') return tid;
  }
  return Status::NotFound(fmt::format("process {} has no live thread", pid));
}

Status check_untraced(pid_t pid) {
  auto status = read_file(proc(pid) + "/status");
  if (!status.ok()) return Status::NotFound(fmt::format("no process {}", pid));
  size_t at = status->find("TracerPid:");
  long tracer = at == std::string::npos ? 0 : std::strtol(status->c_str() + at + 10, nullptr, 10);
  if (tracer != 0)
    return Status::Unsupported(fmt::format(
        "process {} is already traced by process {} (ptrace allows one tracer)", pid, tracer));
  return Status::Ok();
}

// Waits for the interrupt to land; signals arriving first are delivered and the thread
// interrupted again.
Status wait_interrupted(const tracee::Task& task) {
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(auto got, tracee::wait_stop(task.tid()));
    const Stop& s = got.second;
    if (s.kind == Stop::Kind::kExited || s.kind == Stop::Kind::kExitEvent)
      return Status::NotFound(fmt::format("thread {} exited while being seized", task.tid()));
    if (s.kind == Stop::Kind::kGroupStop) return Status::Ok();
    RELIVE_RETURN_IF_ERROR(task.cont(s.kind == Stop::Kind::kSignal ? s.signo : 0));
    ::ptrace(PTRACE_INTERRUPT, task.tid(), nullptr, nullptr);
  }
}

// Seizing a thread in a group-stop (SIGSTOP) moves it into a ptrace stop at once, before
// PTRACE_SEIZE returns; interrupting it as well would queue a second stop that would surface in
// the middle of the first injected call.
bool already_trapped(pid_t tid) {
  int st = 0;
  if (::waitpid(tid, &st, WNOHANG | __WALL) != tid) return false;
  return tracee::decode_stop(st).kind == Stop::Kind::kGroupStop;
}

// Turns the registers of a thread stopped inside an interrupted syscall into the state the
// kernel's own restart would produce, so that they can be restored at any later stop.
tracee::Regs rewind_interrupted(tracee::Regs r) {
  auto rax = static_cast<int64_t>(r.rax);
  if (static_cast<int64_t>(r.orig_rax) >= 0) {
    if (rax == kErestartSys || rax == kErestartNoIntr || rax == kErestartNoHand) {
      r.rip -= 2;
      r.rax = r.orig_rax;
    } else if (rax == kErestartRestartBlock) {
      r.rip -= 2;  // nanosleep & co. continue with the time left, as after a handled stop
      r.rax = SYS_restart_syscall;
    }
  }
  r.orig_rax = static_cast<uint64_t>(-1);
  return r;
}

}  // namespace

Result<uint64_t> find_syscall_insn(pid_t pid) {
  RELIVE_ASSIGN_OR_RETURN(auto maps, tracee::read_maps(pid));
  for (const tracee::Mapping& m : maps) {
    if (m.path != "[vdso]") continue;
    tracee::Task reader(pid);
    RELIVE_ASSIGN_OR_RETURN(std::string image, reader.read_mem(m.start, m.end - m.start));
    size_t at = std::string_view(image).find("\x0f\x05");
    if (at == std::string::npos) break;
    return m.start + at;
  }
  return Status::Unsupported(fmt::format("process {} has no vDSO with a syscall instruction", pid));
}

SeizedThread::SeizedThread(pid_t pid, std::unique_ptr<tracee::Task> task, tracee::Injector::At at,
                           uint64_t syscall_insn, bool owns_ptrace)
    : pid_(pid),
      task_(std::move(task)),
      injector_(std::make_unique<tracee::Injector>(*task_, at, syscall_insn)),
      saved_(task_->regs()),
      owns_ptrace_(owns_ptrace) {}

SeizedThread::SeizedThread(SeizedThread&& o) noexcept
    : pid_(o.pid_),
      task_(std::move(o.task_)),
      injector_(std::move(o.injector_)),
      saved_(o.saved_),
      owns_ptrace_(o.owns_ptrace_),
      held_(std::exchange(o.held_, false)) {}

SeizedThread::~SeizedThread() { (void)release(); }

Result<SeizedThread> SeizedThread::seize(pid_t pid) {
  RELIVE_RETURN_IF_ERROR(check_untraced(pid));
  RELIVE_ASSIGN_OR_RETURN(pid_t tid, live_thread(pid));
  RELIVE_ASSIGN_OR_RETURN(uint64_t insn, find_syscall_insn(pid));
  Result<SeizedThread> t = seize_thread(pid, tid, insn);
  if (!t.ok() && t.status().code() == Status::Code::kNotFound)
    return Status::NotFound(fmt::format("no process {}", pid));
  return t;
}

Result<SeizedThread> SeizedThread::seize_thread(pid_t pid, pid_t tid, uint64_t syscall_insn) {
  if (::ptrace(PTRACE_SEIZE, tid, nullptr, PTRACE_O_TRACESYSGOOD) != 0) {
    int e = errno;
    if (e == ESRCH) return Status::NotFound(fmt::format("no thread {} in process {}", tid, pid));
    if (e == EPERM) RELIVE_RETURN_IF_ERROR(check_untraced(pid));  // lost a race to a tracer
    return PosixError(fmt::format("PTRACE_SEIZE of thread {} of process {}", tid, pid), e);
  }
  auto task = std::make_unique<tracee::Task>(tid);
  Status stopped = already_trapped(tid) ? Status::Ok()
                   : ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0
                       ? wait_interrupted(*task)
                       : PosixError("PTRACE_INTERRUPT", errno);
  if (!stopped.ok()) {
    ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    return stopped;
  }
  // The stop is clean from here on: what release() restores is the rewound state.
  task->set_regs(rewind_interrupted(task->regs()));
  return SeizedThread(pid, std::move(task), tracee::Injector::At::kElsewhere, syscall_insn, true);
}

Result<SeizedThread> SeizedThread::adopt(const tracee::Task& task, tracee::Injector::At at) {
  if (at == tracee::Injector::At::kEntry)
    return Status::InvalidArgument(
        "cannot inject at a syscall-entry stop: the entered call would be lost");
  RELIVE_ASSIGN_OR_RETURN(uint64_t insn, find_syscall_insn(task.tid()));
  pid_t tid = task.tid();
  task.set_regs(rewind_interrupted(task.regs()));
  return SeizedThread(tid, std::make_unique<tracee::Task>(tid), at, insn, false);
}

Result<int64_t> SeizedThread::call(int nr, std::initializer_list<uint64_t> args) {
  return injector_->call(nr, args);
}

Result<int64_t> SeizedThread::call_ok(const char* what, int nr,
                                      std::initializer_list<uint64_t> args) {
  RELIVE_ASSIGN_OR_RETURN(int64_t rv, call(nr, args));
  if (rv < 0 && rv > -4096)
    return PosixError(fmt::format("injected {} in process {}", what, pid_), static_cast<int>(-rv));
  return rv;
}

Status SeizedThread::release() {
  if (!std::exchange(held_, false)) return Status::Ok();
  task_->set_regs(saved_);
  if (!owns_ptrace_) return Status::Ok();
  // Signals held back go back before the detach: the thread takes them on its way out of the
  // ptrace stop, before any user code. Sent after, a held SIGSTOP (a restored process's own,
  // still queued when it was seized) would let the thread run its program in between.
  for (int sig : injector_->held_signals()) ::kill(pid_, sig);
  if (::ptrace(PTRACE_DETACH, task_->tid(), nullptr, nullptr) != 0)
    return PosixError(fmt::format("PTRACE_DETACH from process {}", pid_), errno);
  return Status::Ok();
}

}  // namespace relive::dirty
