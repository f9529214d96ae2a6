// The one table of x86-64 system calls: each call's name and argument count (for `relive dump`
// and divergence reports), what the tracer does with it (its Policy; the seccomp filter lets the
// kAllow ones through untraced), which tracee memory it writes (its out-buffer rules, which the
// recorder saves and the replayer writes back), and the facts the sessions ask of it (changes
// the descriptor table, may write to the recorder's own output). Adding a system call is one
// line of syscall_table.cc; decide() in syscall_policy.h refines the policy with the arguments
// where the number alone does not say (mmap, clone, futex).
#pragma once

#include <array>
#include <cstdint>

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

// One region of tracee memory a successful call writes, described by its arguments and result.
// out_buffers.cc turns a rule into address ranges.
struct OutRule {
  enum Kind : uint8_t {
    kNone = 0,
    kResult,       // args[arg] gets `result` bytes (read, getdents64, getrandom)
    kFixed,        // args[arg] gets `size` bytes (stat, clock_gettime)
    kResultTimes,  // args[arg] gets result * size bytes (epoll_wait: events)
    kArgTimes,     // args[arg] gets args[count] * size bytes (poll: the pollfd array)
    kIov,          // the first `result` bytes of the iovec array args[arg] of args[count] entries
    kSockaddr,     // socket address args[arg] of length *args[count] (at most size), and the length
    kMsghdr,       // the msghdr at args[arg] (name, control, iovecs and the lengths)
    kMmsghdrs,     // `result` mmsghdrs at args[arg]
    kFdSets,       // select's three fd_sets of args[0] descriptors at args[1..3]
    kByArguments,  // depends on an operation argument: ioctl, futex, prctl, mincore, mempolicy
  };
  Kind kind = kNone;
  uint8_t arg = 0;
  uint8_t count = 0;
  uint16_t size = 0;
};

inline constexpr int kMaxOutRules = 3;

// Facts about a call that the sessions act on.
enum SyscallFlag : uint8_t {
  kFdTable = 1,        // may change what a descriptor number refers to
  kOutputWrite = 2,    // write-family: its target may be the recorder's own stdout/stderr
  kWritesOnEintr = 4,  // writes its out-buffers (remaining time) even when it fails
};

struct SyscallSpec {
  int nr = -1;
  const char* name = nullptr;  // nullptr: no system call has this number on x86-64
  uint8_t args = 6;            // argument registers it reads (a 64-bit offset takes one)
  Policy policy = Policy::kUnsupported;
  std::array<OutRule, kMaxOutRules> out{};
  uint8_t flags = 0;
  const char* why = nullptr;  // for a kUnsupported call with a known reason: the reason
};

// The largest number the table knows (Linux 6.18's open_tree_attr).
inline constexpr int kMaxSyscall = 467;

// The entry for `nr`: for a number with no system call (or out of range) an entry with a null
// name, 6 arguments and kUnsupported.
const SyscallSpec& syscall_spec(int nr);

// "read" for 0; nullptr for a number with no system call.
inline const char* syscall_name(int nr) { return syscall_spec(nr).name; }
// How many arguments `nr` takes; 6 when unknown, so that nothing is hidden.
inline int syscall_arg_count(int nr) { return syscall_spec(nr).args; }

}  // namespace relive::tracee
