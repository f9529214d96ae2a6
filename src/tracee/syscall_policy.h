// What the tracer does with each x86-64 system call. Anything not listed is unsupported: the
// recording stops with a clear message rather than risk a silent divergence at replay.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace relive::tracee {

using SyscallArgs = std::array<uint64_t, 6>;

enum class Policy : uint8_t {
  kUnsupported = 0,
  kAllow,      // deterministic and process-local: never stops, runs natively at replay too
  kEmulate,    // runs at record, result and out-buffers logged; skipped at replay
  kNative,     // runs at record and replay (result checked, fixed up through logged writes)
  kMmapFile,   // a file-backed mmap: the file is saved; replay maps the saved copy
  kClone,      // thread creation (native, tid mapped)
  kFork,       // child process creation (native, pid mapped; vfork runs as fork)
  kExec,       // execve (native; the new image is set up like a launched one)
  kExit,       // a thread's exit (native)
  kExitGroup,  // the process's exit (native)
  kDenyNosys,  // refused with ENOSYS at record and replay (rseq: the kernel would write CPU ids)
};

struct Decision {
  Policy policy = Policy::kUnsupported;
  std::string why;  // for kUnsupported: what is not supported, for the user
};

// The policy from the syscall number alone; kAllow syscalls are not traced by the seccomp filter.
Policy base_policy(int nr);
// Refines base_policy() with the arguments (mmap flags, clone flags, ioctl request...).
// `read_word` reads 8 bytes of tracee memory (for clone3's argument struct).
Decision decide(int nr, const SyscallArgs& args, uint64_t clone3_flags = 0);

// True for write-family calls whose target may be the recorder's own stdout/stderr.
bool is_output_write(int nr);
// True for syscalls that change what a file descriptor number refers to.
bool changes_fd_table(int nr);
// The largest syscall number the tables know.
inline constexpr int kMaxSyscall = 460;

}  // namespace relive::tracee
