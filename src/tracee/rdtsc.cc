#include "tracee/rdtsc.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cerrno>

#include "tracee/tracer_tsc.h"

namespace relive::tracee {
namespace {

// 0 = not a TSC read, else the instruction's length; sets *rdtscp.
Result<int> tsc_instruction(const Task& task, uint64_t rip, bool* rdtscp) {
  unsigned char code[3] = {};
  RELIVE_RETURN_IF_ERROR(task.read_mem(rip, code, sizeof code));
  if (code[0] == 0x0f && code[1] == 0x31) {
    *rdtscp = false;
    return 2;
  }
  if (code[0] == 0x0f && code[1] == 0x01 && code[2] == 0xf9) {
    *rdtscp = true;
    return 3;
  }
  return 0;
}

void set_result(const Task& task, Regs r, const TscReading& v, int len) {
  r.rax = v.tsc & 0xffffffffu;
  r.rdx = v.tsc >> 32;
  if (v.rdtscp) r.rcx = v.aux;
  r.rip += static_cast<uint64_t>(len);
  task.set_regs(r);
}

constexpr int kTrappedExit = 42;

// A handled fault is not logged by the kernel (an unhandled one would be, as a crash).
void on_probe_fault(int) { ::_exit(kTrappedExit); }

bool probe_rdtsc_trap() {
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    ::signal(SIGSEGV, on_probe_fault);
    ::prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0);
    volatile uint64_t t = __rdtsc();
    (void)t;
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == kTrappedExit;
}

}  // namespace

bool rdtsc_traps() {
  static const bool traps = probe_rdtsc_trap();
  return traps;
}

Result<std::optional<TscReading>> emulate_rdtsc_if_trapped(const Task& task) {
  Regs r = task.regs();
  TscReading v;
  RELIVE_ASSIGN_OR_RETURN(int len, tsc_instruction(task, r.rip, &v.rdtscp));
  if (len == 0) return std::optional<TscReading>();
  v.tsc = v.rdtscp ? tracer_rdtscp(&v.aux) : tracer_rdtsc();
  set_result(task, r, v, len);
  return std::optional<TscReading>(v);
}

Result<bool> apply_rdtsc(const Task& task, const TscReading& reading) {
  Regs r = task.regs();
  bool rdtscp = false;
  RELIVE_ASSIGN_OR_RETURN(int len, tsc_instruction(task, r.rip, &rdtscp));
  if (len == 0 || rdtscp != reading.rdtscp) return false;
  set_result(task, r, reading, len);
  return true;
}

}  // namespace relive::tracee
