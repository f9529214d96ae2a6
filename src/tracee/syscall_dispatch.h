// Syscall User Dispatch (prctl PR_SET_SYSCALL_USER_DISPATCH): how an attached process's system
// calls reach the tracer without a seccomp filter, which could never be taken off again.
//
// With dispatch on and the process's selector byte set to "block", a system call made from
// anywhere but relive's own pages (the fast trampolines, the syscall buffer, the fast-path blob:
// one range) is not made: the kernel raises SIGSYS (si_code SYS_USER_DISPATCH), which the tracer
// sees as a signal stop with the call's number in orig_rax and rip just past its `syscall`. The
// tracer makes the call again, same registers, from a `syscall` inside the range and stops it at
// its entry (PTRACE_SYSCALL), where it sets the call to return to the program's own instruction.
// The selector stays at "block" throughout: it is the whole process's, and lifting it for one
// thread's call would let another's through untraced. Calls made from the range (the fast
// path's) never stop unless the tracer asked for syscall stops.
//
// Dispatch belongs to one thread and is not inherited (a new thread or process starts without
// it, execve clears it), so the tracer turns it on in each one. It is taken off by setting the
// selector to "allow" and turning it off per thread: a process a recorder detaches from, or a
// replayed one that goes live, carries on as if it had never been traced.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "relive/result.h"
#include "tracee/fast_path_abi.h"
#include "tracee/fast_path_blob.h"
#include "tracee/inject.h"
#include "tracee/syscall_buffer.h"
#include "tracee/task.h"
#include "tracee/vdso.h"

namespace relive::tracee {

// Calls made from [start, end) go through; the range holds the fast trampolines, the syscall
// buffer (data only) and the fast-path blob, and nothing else that is executable.
inline constexpr uint64_t kDispatchAllowedStart = kTrampolineAddr + kFastTrampolineOffset;
inline constexpr uint64_t kDispatchAllowedEnd = kFastPathBlobAddr + kFastPathBlobSize;
// The process's selector, shared by its threads (the recording runs one thread at a time): the
// syscall buffer's last word, past its last slot, which neither the fast path nor a replayer's
// prefill ever writes.
inline constexpr uint64_t kDispatchSelectorAddr = kSyscallBufferAddr + kSyscallBufferSize - 8;
static_assert(sizeof(SyscallBufferHeader) + kBufferCapacity * sizeof(SyscallBufferEntry) <=
              kSyscallBufferSize - 8);
static_assert(kDispatchSelectorAddr == RELIVE_FP_DISPATCH_SELECTOR);
inline constexpr unsigned char kSelectorAllow = 0;  // SYSCALL_DISPATCH_FILTER_ALLOW
inline constexpr unsigned char kSelectorBlock = 1;  // SYSCALL_DISPATCH_FILTER_BLOCK

// Turns dispatch on in `task` (stopped where Injector `at` says, `syscall_insn` a `syscall`
// instruction to inject from) and sets the selector to "block". Should the tracer die while
// dispatch is on, the process carries on: where the program has no SIGSYS action of its own, the
// blob's handler (fast_path.c, relive_sigsys) is installed, which lets every call through from
// then on (disable_syscall_dispatch removes it). Signals that arrived meanwhile are appended to
// `held` (Injector::held_signals). The registers are left as they were; a failure leaves no
// dispatch behind (a process that uses dispatch itself is refused, its own left alone).
Status enable_syscall_dispatch(const Task& task, Injector::At at, uint64_t syscall_insn,
                               std::vector<int>* held);

// Sets the selector to "allow", turns dispatch off in `task` and removes the SIGSYS handler
// (stopped as above; at an entry stop the call being entered is made again when the thread
// resumes). The registers are left as they were (but for that rewind).
Status disable_syscall_dispatch(const Task& task, Injector::At at, uint64_t syscall_insn,
                                std::vector<int>* held);

// Whether the call is the program's own prctl(PR_SET_SYSCALL_USER_DISPATCH), which would replace
// (or turn off) the dispatch a tracer set up.
bool sets_syscall_dispatch(int nr, const SyscallArgs& args);

// Whether a SIGSYS stop's siginfo is a call dispatch stopped.
bool is_dispatched_syscall(const std::string& siginfo);

// `task` is at the SIGSYS stop of a dispatched call: sets it to make the call again, with the
// same registers, from a `syscall` instruction among the fast trampolines, which dispatch lets
// through. The selector, which every thread of the process shares, stays at "block": lifting it
// would let another thread's call through untraced (one restarted by the kernel, one the program
// makes meanwhile) and that thread run on unrecorded. Returns the address the call returns to
// (just past the program's own `syscall`). The caller resumes the thread with PTRACE_SYSCALL,
// without the signal, holding any other signal until the entry stop that follows, and there
// calls return_reissued_syscall; until then the thread must not run user code.
Result<uint64_t> reissue_dispatched_syscall(const Task& task);

// At the entry stop of a reissued call: it returns to `return_to`, rcx as the program's own
// `syscall` left it.
Status return_reissued_syscall(const Task& task, uint64_t return_to);

// A reissued call stopped before its entry (an interrupt): the thread goes back to the program's
// own `syscall`, which it makes when it runs on.
Status cancel_reissued_syscall(const Task& task, uint64_t return_to);

}  // namespace relive::tracee
