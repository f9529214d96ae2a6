// The state a fast epoch carries besides memory, instead of a CRIU dump (fast_capture.h):
// registers, extended FPU state and signal mask of every thread of the protected tree, and the
// offsets of regular files that moved since the base dump, captured while the tree is frozen and
// put back into the tree CRIU restored from the base dump, before it runs again. The file that
// carries them (relive-threads.img in the epoch's images) is relive's own format, decoded with
// every length checked: it arrives from the primary over the network.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dirty/seized_thread.h"
#include "relive/result.h"
#include "tracee/task.h"

namespace relive::ha {

// Name of the file in an epoch's images that holds the threads' states.
inline constexpr const char* kThreadsImage = "relive-threads.img";

struct ThreadState {
  pid_t pid = 0;        // in the workload's PID namespace, as in CRIU's images
  pid_t tid = 0;        // likewise
  tracee::Regs regs{};  // as the thread resumes (an interrupted syscall rewound, orig_rax -1)
  std::string xstate;   // PTRACE_GETREGSET NT_X86_XSTATE, as the kernel gave it
  uint64_t sigmask = 0;
};

// Reads the state of a thread held by `t`; `pid` and `tid` are its numbers in the workload's
// namespace.
Result<ThreadState> capture_thread(const dirty::SeizedThread& t, pid_t pid, pid_t tid);

// Gives the thread held by `t` the state `s`: the extended FPU state and the signal mask now,
// the registers when `t` releases it.
Status apply_thread(dirty::SeizedThread* t, const ThreadState& s);

// A regular file's offset in a process (both numbered as in the images).
struct FileOffset {
  pid_t pid = 0;
  int fd = 0;
  int64_t pos = 0;
};

struct FastState {
  std::vector<ThreadState> threads;
  std::vector<FileOffset> offsets;  // only those that differ from the base dump's
};

std::string encode_fast_state(const FastState& state);
// Corruption when `image` is not a complete, well-formed threads image.
Result<FastState> decode_fast_state(std::string_view image);

// Puts `state` into the tree whose root CRIU restored stopped (global PID `root`): every thread
// of the state must be found (by its PIDs in the namespace) and every restored thread must have
// a state; the offsets are set by lseek calls injected into their processes. The tree stays
// stopped; the caller resumes it.
Status apply_fast_state(pid_t root, const FastState& state);

// The numeric entries of /proc/PID/task: the threads of `pid`, by global id.
Result<std::vector<pid_t>> tasks_of(pid_t pid);

// The PIDs of process or thread `id` (global) as its own PID namespace sees it: the last NSpid
// entry of /proc/ID/status.
Result<pid_t> pid_in_namespace(pid_t id);

}  // namespace relive::ha
