#include "tracee/tracer_tsc.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cstring>
#include <ctime>
#include <mutex>

namespace relive::tracee {
namespace {

thread_local bool t_tsc_disabled = false;
struct sigaction g_previous {};

// Runs `read` with rdtsc enabled on this thread for the moment, if a guard disabled it.
template <typename F>
uint64_t with_tsc(F read) {
  if (!t_tsc_disabled) return read();
  ::prctl(PR_SET_TSC, PR_TSC_ENABLE, 0, 0, 0);
  uint64_t v = read();
  ::prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0);
  return v;
}

void chain(int sig, siginfo_t* info, void* context) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) return g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  // The default action: restore it and return; the faulting instruction runs again and dies.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGSEGV, &dfl, nullptr);
}

void on_segv(int sig, siginfo_t* info, void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  greg_t* r = uc->uc_mcontext.gregs;
  const auto* ip = reinterpret_cast<const unsigned char*>(r[REG_RIP]);
  if (t_tsc_disabled && info->si_code == SI_KERNEL && ip[0] == 0x0f) {
    if (ip[1] == 0x31) {
      uint64_t v = tracer_rdtsc();
      r[REG_RAX] = static_cast<greg_t>(v & 0xffffffffu);
      r[REG_RDX] = static_cast<greg_t>(v >> 32);
      r[REG_RIP] += 2;
      return;
    }
    if (ip[1] == 0x01 && ip[2] == 0xf9) {
      uint32_t aux = 0;
      uint64_t v = tracer_rdtscp(&aux);
      r[REG_RAX] = static_cast<greg_t>(v & 0xffffffffu);
      r[REG_RDX] = static_cast<greg_t>(v >> 32);
      r[REG_RCX] = static_cast<greg_t>(aux);
      r[REG_RIP] += 3;
      return;
    }
  }
  chain(sig, info, context);
}

void install_handler_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_previous);
  });
}

}  // namespace

TracerTscGuard::TracerTscGuard() {
  if (t_tsc_disabled) return;  // an outer guard on this thread owns it
  install_handler_once();
  if (::prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) != 0) return;
  t_tsc_disabled = true;
  active_ = true;
}

TracerTscGuard::~TracerTscGuard() {
  if (!active_) return;
  ::prctl(PR_SET_TSC, PR_TSC_ENABLE, 0, 0, 0);
  t_tsc_disabled = false;
}

uint64_t tracer_rdtsc() {
  return with_tsc([] { return static_cast<uint64_t>(__rdtsc()); });
}

uint64_t tracer_rdtscp(uint32_t* aux) {
  unsigned a = 0;
  uint64_t v = with_tsc([&] { return static_cast<uint64_t>(__rdtscp(&a)); });
  *aux = a;
  return v;
}

std::chrono::steady_clock::time_point kernel_steady_now() {
  timespec ts{};
  ::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

}  // namespace relive::tracee
