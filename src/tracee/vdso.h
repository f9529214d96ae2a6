// The vDSO answers clock_gettime, gettimeofday, time and getcpu without entering the kernel, so
// the tracer would never see them. relive turns them into real (traced, recorded) system calls,
// and replay does the same.
//
// Nothing but a jump is written into the vDSO: each entry point becomes one instruction,
// `jmp *0(%rip)` followed by its target, and the target is a trampoline (`mov $nr,%eax;
// syscall; ret`) in relive's trampoline page, an ordinary private mapping at a fixed address.
// A thread can therefore only be stopped at a vDSO entry point (before the jump), where the
// original code starts too, or inside a trampoline, which every checkpoint carries. CRIU
// replaces the vDSO with the restoring host's own and a detaching recorder puts the original
// bytes back; either way a thread that was frozen mid-call or whose signal frame returns into a
// trampoline carries on correctly.
//
// clock_gettime, gettimeofday and time jump to fast trampolines (syscall_buffer.h), which fall
// back to the traced ones whenever the syscall buffer has no room (or, at replay, no entry for
// the call), which is always outside an exec-mode recording and a replayer's prefilled runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "relive/result.h"
#include "tracee/process_info.h"
#include "tracee/task.h"

namespace relive::tracee {

// The trampoline page: right after the scratch page (inject.h), mapped read+exec.
inline constexpr uint64_t kTrampolineAddr = 0x70000001000ull;
inline constexpr uint64_t kTrampolineSize = 4096;
// A `syscall` instruction in the trampoline page (clock_gettime's traced trampoline), for
// injecting calls into a thread stopped at a syscall exit.
inline constexpr uint64_t kTrampolineSyscallInsn = kTrampolineAddr + 5;
// The fast trampolines (syscall_buffer.h): calls made from these bytes of the trampoline page are
// let through by the seccomp filter without a stop.
inline constexpr uint64_t kFastTrampolineOffset = 0x100;
inline constexpr uint64_t kFastTrampolineStride = 0x200;
inline constexpr uint64_t kFastTrampolineEnd = kFastTrampolineOffset + 3 * kFastTrampolineStride;

struct VdsoEntry {
  uint64_t addr = 0;     // the entry point in the vDSO
  std::string original;  // the bytes the jump replaced
};

struct VdsoPatch {
  uint64_t base = 0;
  uint64_t syscall_insn = 0;  // a `syscall` instruction in a trampoline (for injection)
  std::vector<VdsoEntry> entries;
};

// The trampoline page's contents: one trampoline per syscall the vDSO answers.
std::string trampoline_page();

// Whether the (stopped) task's process runs this build's trampoline page, which a replayer's
// prefilled syscall buffer needs (a process restored from an older build's image may not).
Result<bool> has_current_trampolines(const Task& task);

// Writes the trampolines into the trampoline page (which must be mapped) and the jumps into the
// vDSO mapped at `base` in the (stopped) task's process.
Result<VdsoPatch> patch_vdso(const Task& task, uint64_t base);

// Puts the original entry points back. Safe whatever the threads are doing: a thread stopped at
// an entry point runs the original function from its start.
Status unpatch_vdso(const Task& task, const VdsoPatch& patch);

// The address of a `syscall` instruction in the process's vDSO as the kernel made it (before
// patching), for injecting the system call that maps the trampoline page.
Result<uint64_t> find_vdso_syscall_insn(const Task& task, uint64_t base);

// The [vdso] mapping of `pid`.
Result<Mapping> vdso_mapping(pid_t pid);
// True when `addr` lies inside the [vdso] mapping of `pid`.
Result<bool> in_vdso(pid_t pid, uint64_t addr);

}  // namespace relive::tracee
