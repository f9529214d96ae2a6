#include "tracee/resume_check.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include "common/logging.h"
#include "common/process_tree.h"
#include "tracee/signals.h"
#include "tracee/task.h"

namespace relive::tracee {
namespace {

using Clock = std::chrono::steady_clock;

constexpr long kWatchOptions = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
                               PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC;

// The process exists and is not a zombie.
bool alive(pid_t pid) {
  char s = task_state(pid);
  return s != '\0' && s != 'Z' && s != 'X';
}

bool is_stop_signal(int sig) {
  return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

std::string describe_fault(pid_t tid, int signo) {
  Task t(tid);
  Regs r = t.regs();
  std::string info;
  siginfo_t si{};
  if (t.get_siginfo(&info).ok()) std::memcpy(&si, info.data(), std::min(info.size(), sizeof si));
  return fmt::format("thread {} got {} at ip {:#x} (sp {:#x}, address {})", tid, strsignal(signo),
                     r.rip, r.rsp, si.si_addr);
}

// Watches every thread of the workload (and any it starts) under ptrace for the window: the
// tracees run freely (PTRACE_CONT); only signals and ptrace events stop them, each for a moment.
class Watch {
 public:
  explicit Watch(const ResumeCheck& c) : check_(c) {}
  ~Watch() {
    for (const auto& [tid, started] : watched_) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  }

  // After SIGKILL: a killed tracee is reported to its tracer (us) before its thread group can
  // be reaped by its parent; collect those reports so nobody waits on it forever.
  // A thread group leader is reported only after its other threads, so each is polled in turn.
  void reap_killed() {
    auto deadline = Clock::now() + check_.deadline;
    while (!watched_.empty() && Clock::now() < deadline) {
      for (auto it = watched_.begin(); it != watched_.end();) {
        int st = 0;
        pid_t got = ::waitpid(it->first, &st, WNOHANG | __WALL);
        bool ended = (got == it->first && (WIFEXITED(st) || WIFSIGNALED(st))) ||
                     (got < 0 && errno == ECHILD);
        it = ended ? watched_.erase(it) : std::next(it);
      }
      if (!watched_.empty()) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    watched_.clear();
  }

  // Everything watched: the caller's processes and whatever they started during the window.
  std::vector<pid_t> all() const {
    std::vector<pid_t> out;
    for (const auto& [tid, started] : watched_) out.push_back(tid);
    return out;
  }

  Status run(const std::vector<pid_t>& processes) {
    for (pid_t p : processes) RELIVE_RETURN_IF_ERROR(seize(p));
    for (pid_t p : processes) ::kill(p, SIGCONT);
    auto end = Clock::now() + check_.window;
    while (Clock::now() < end) RELIVE_RETURN_IF_ERROR(poll_once());
    RELIVE_RETURN_IF_ERROR(let_all_go());
    // The restored root must still be there, unless it ended by itself (an exit, or a signal
    // someone sent it): a fault would have been caught above.
    if (!processes.empty() && !alive(processes[0]) && !ended_.count(processes[0]))
      return Status::Aborted(fmt::format("restored process {} is gone", processes[0]));
    return Status::Ok();
  }

 private:
  Status seize(pid_t process) {
    for (pid_t tid : threads_of(process)) {
      if (::ptrace(PTRACE_SEIZE, tid, nullptr, kWatchOptions) != 0) {
        if (errno == ESRCH) continue;  // gone already: the check at the end decides
        return PosixError(fmt::format("watching restored thread {}", tid), errno);
      }
      watched_[tid] = false;
    }
    return Status::Ok();
  }

  Status poll_once() {
    bool any = false;
    for (auto it = watched_.begin(); it != watched_.end();) {
      pid_t tid = (it++)->first;  // on_stop may erase tid or add new tracees
      int st = 0;
      pid_t got = ::waitpid(tid, &st, WNOHANG | __WALL);
      if (got <= 0) continue;
      any = true;
      RELIVE_RETURN_IF_ERROR(on_stop(tid, st));
    }
    if (!any) std::this_thread::sleep_for(std::chrono::microseconds(500));
    return Status::Ok();
  }

  Status on_stop(pid_t tid, int st) {
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      // An exit, or a signal sent by someone (a fault would have been caught at its delivery):
      // the workload's own doing.
      ended_.insert(tid);
      watched_.erase(tid);
      return Status::Ok();
    }
    Stop s = decode_stop(st);
    int deliver = 0;
    switch (s.kind) {
      case Stop::Kind::kSignal: {
        std::string info;
        (void)Task(tid).get_siginfo(&info);
        if (is_synchronous_fault(s.signo, info))
          return Status::Aborted(describe_fault(tid, s.signo));
        deliver = s.signo;
        break;
      }
      case Stop::Kind::kClone: {
        // A thread or process started meanwhile: watched too (it arrives stopped).
        pid_t child = static_cast<pid_t>(Task(tid).event_msg());
        if (child > 0 && !watched_.count(child)) watched_[child] = false;
        break;
      }
      case Stop::Kind::kGroupStop:
        if (interrupting_) {
          ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);  // stays stopped if it was
          watched_.erase(tid);
          return Status::Ok();
        }
        if (watched_[tid] && is_stop_signal(s.signo)) {
          // The workload stopped itself (SIGSTOP...): it stays stopped until a SIGCONT.
          ::ptrace(PTRACE_LISTEN, tid, nullptr, nullptr);
          return Status::Ok();
        }
        // The stop it was restored in, a new thread's first stop, or the notice (SIGTRAP) that
        // a SIGCONT ended a stop: run.
        break;
      default:
        break;
    }
    if (interrupting_) {
      ::ptrace(PTRACE_DETACH, tid, nullptr, deliver);
      watched_.erase(tid);
      return Status::Ok();
    }
    watched_[tid] = true;
    ::ptrace(PTRACE_CONT, tid, nullptr, deliver);
    return Status::Ok();
  }

  // Stops each tracee (PTRACE_INTERRUPT) and detaches it at that stop.
  Status let_all_go() {
    interrupting_ = true;
    for (const auto& [tid, started] : watched_) ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
    auto deadline = Clock::now() + check_.deadline;
    while (!watched_.empty()) {
      if (Clock::now() > deadline)
        return Status::IoError(
            fmt::format("{} restored thread(s) never came to a stop", watched_.size()));
      RELIVE_RETURN_IF_ERROR(poll_once());
    }
    return Status::Ok();
  }

  ResumeCheck check_;
  std::map<pid_t, bool> watched_;  // tid -> has run since the check began
  std::set<pid_t> ended_;          // tids that ended by themselves
  bool interrupting_ = false;
};

}  // namespace

Status resume_and_confirm(const std::vector<pid_t>& processes, const ResumeCheck& check) {
  Status s;
  {
    Watch w(check);
    s = w.run(processes);
    if (!s.ok()) {  // before the watch lets anything go
      for (pid_t p : processes) ::kill(p, SIGKILL);
      for (pid_t t : w.all()) ::kill(t, SIGKILL);
      w.reap_killed();
    }
  }
  if (!s.ok()) RELIVE_LOG_WARN("the restored workload does not run: {}", s.to_string());
  return s;
}

}  // namespace relive::tracee
