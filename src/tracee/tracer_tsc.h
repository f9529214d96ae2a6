// The tracer thread's own rdtsc, disabled like its tracees'. Whether a thread may run rdtsc is a
// bit of CR4 that the kernel rewrites whenever the CPU switches between threads that differ in
// it, and on these virtual machines a CR4 write is an exit to the hypervisor: with the tracees'
// rdtsc trapped (tracee/rdtsc.h, launch.cc) and the tracer's not, every ptrace stop paid two of
// them (bench/ptrace_stop.c: 14 vs 39 us per two-stop syscall on one CPU). So a tracer thread
// that launches such tracees disables its own rdtsc while it traces them.
//
// Its own reads of the TSC (a tracee's rdtsc emulated at record) go through tracer_rdtsc(), which
// enables the instruction for that one read. Its clocks come from the kernel
// (kernel_steady_now()). Any other rdtsc on the thread (a library's vDSO clock read) faults into
// a SIGSEGV handler that does the same and steps over it: nothing breaks, it is only slower.
// Faults that are not an rdtsc of such a thread go to the handler that was there before (or
// the default action).
#pragma once

#include <chrono>
#include <cstdint>

namespace relive::tracee {

class TracerTscGuard {
 public:
  // Disables rdtsc on the calling thread until destroyed (on the same thread).
  TracerTscGuard();
  ~TracerTscGuard();
  TracerTscGuard(const TracerTscGuard&) = delete;
  TracerTscGuard& operator=(const TracerTscGuard&) = delete;

  // Whether this guard disabled it (false when the prctl is refused: nothing to undo).
  bool active() const { return active_; }

 private:
  bool active_ = false;
};

// rdtsc / rdtscp on the calling thread, whether or not a guard disabled them there.
uint64_t tracer_rdtsc();
uint64_t tracer_rdtscp(uint32_t* aux);

// CLOCK_MONOTONIC read through the system call, not the vDSO (whose fast path is an rdtsc):
// what a guarded tracer thread uses on its hot paths. Same epoch as std::chrono::steady_clock.
std::chrono::steady_clock::time_point kernel_steady_now();

}  // namespace relive::tracee
