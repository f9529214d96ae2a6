// The trace's own types: what the tracer logs and the replayer consumes. These are plain C++,
// free of Cap'n Proto, so that every layer above src/wire/ can use them; src/wire/ converts them to
// and from the Cap'n Proto encoding (schemas/trace.capnp).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace relive::trace {

// Bump when a reader of the old format would misread the new one. 2: SitePatchEvent (a reader of
// version 1 would replay a patched process without its patches).
inline constexpr uint32_t kFormatVersion = 2;

// A span of tracee memory that a syscall wrote (an out-buffer); written back at replay.
struct MemWrite {
  uint64_t addr = 0;
  std::string data;
  bool operator==(const MemWrite&) const = default;
};

// A write(2)-family syscall whose fd was the recorder's own stdout or stderr; the replayer
// reproduces such output on its own stdout or stderr.
enum class Stream : uint8_t { kNone = 0, kStdout = 1, kStderr = 2 };

// How the replayer treats a syscall.
enum class SyscallMode : uint8_t {
  kEmulated = 0,  // not executed at replay: result and out-buffers come from the log
  kNative = 1,    // executed at replay (memory management, thread creation); result fixed up
  kMapFile = 2,   // a file mapping: replay maps the saved copy (`file`) at the recorded address
};

struct SyscallEvent {
  int32_t tid = 0;
  int32_t nr = 0;
  std::array<uint64_t, 6> args{};
  int64_t result = 0;
  SyscallMode mode = SyscallMode::kEmulated;
  std::vector<MemWrite> writes;
  Stream stream = Stream::kNone;
  uint64_t data_hash = 0;  // hash of the bytes a write-family syscall sent out; checked at replay
  std::string file;        // kMapFile: name of the saved copy under the trace's files/
  // kMapFile of a shared writable mapping: the file's identity at record ("dev:inode"). Replay
  // maps every such mapping of one file (in any of the recorded processes) from one working copy.
  std::string shared_key;
  // A write the fast path made (tracee/fast_path_abi.h) of which only `result` bytes went out;
  // the rest is this thread's next write, made through the traced path.
  bool continued = false;
  bool operator==(const SyscallEvent&) const = default;
};

// A trapped rdtsc/rdtscp (PR_SET_TSC): the value the instruction produced.
struct RdtscEvent {
  int32_t tid = 0;
  uint64_t tsc = 0;
  uint32_t aux = 0;  // rdtscp's TSC_AUX (ecx)
  bool rdtscp = false;
  bool operator==(const RdtscEvent&) const = default;
};

// An asynchronous signal, delivered to `tid` right after its previous syscall event.
struct SignalEvent {
  int32_t tid = 0;
  int32_t signo = 0;
  std::string siginfo;  // the raw siginfo_t (128 bytes) to deliver
  bool operator==(const SignalEvent&) const = default;
};

struct ThreadExitEvent {
  int32_t tid = 0;
  bool operator==(const ThreadExitEvent&) const = default;
};

// A thread entered a syscall and the tracer let another thread run before the syscall
// completed (it blocked, or others were ready). Replay parks the thread at that syscall's entry
// here, so every thread's user-space run happens in the recorded order. When no other thread ran
// in between, the entry is implied by the SyscallEvent and not logged.
struct SyscallEntryEvent {
  int32_t tid = 0;
  int32_t nr = 0;
  bool operator==(const SyscallEntryEvent&) const = default;
};

// Recording of an attached process ended here (relive was asked to stop); the process went on
// untraced. A replay ends after this event with the process in the state it had here.
struct DetachEvent {
  // A freeze (live migration): the thread the recording left at the entry of its next traced
  // syscall, having run user code since its last event; 0 when none did (or a trace from before
  // this was said: its only thread).
  int32_t parked_tid = 0;
  bool operator==(const DetachEvent&) const = default;
};

// The tracer preempted `tid` in a spin-wait (a loop whose passes change nothing) so that other
// threads could run. Replay runs the thread until its state is exactly this one again.
struct PreemptEvent {
  int32_t tid = 0;
  std::string regs;         // raw x86-64 user_regs_struct (kPreemptRegsBytes)
  uint64_t state_hash = 0;  // FPU/SSE registers and writable memory (tracee/thread_state.h)
  bool operator==(const PreemptEvent&) const = default;
};
inline constexpr size_t kPreemptRegsBytes = 27 * 8;
inline constexpr size_t kPreemptIpOffset = 16 * 8;  // rip's place in user_regs_struct
// The instruction pointer in `p.regs` (0 if the registers are short).
inline uint64_t preempt_ip(const PreemptEvent& p) {
  uint64_t ip = 0;
  if (p.regs.size() >= kPreemptIpOffset + 8) std::memcpy(&ip, p.regs.data() + kPreemptIpOffset, 8);
  return ip;
}

// The tracer patched a syscall site of thread `tid`'s process (tracee/syscall_sites.h) as the
// thread was about to run on from that site's syscall exit; replay makes the same patch there.
struct SitePatchEvent {
  int32_t tid = 0;
  uint64_t site = 0;       // the `syscall` instruction's address
  uint64_t stub = 0;       // where its stub starts
  uint64_t stub_page = 0;  // the page holding the stub
  bool new_page = false;   // the page was mapped for this patch
  bool operator==(const SitePatchEvent&) const = default;
};

// The last event of a trace: the whole process ended with this wait(2) status.
struct ProcessExitEvent {
  int32_t status = 0;
  bool operator==(const ProcessExitEvent&) const = default;
};

using Event = std::variant<SyscallEvent, RdtscEvent, SignalEvent, ThreadExitEvent, ProcessExitEvent,
                           SyscallEntryEvent, DetachEvent, PreemptEvent, SitePatchEvent>;

// Whether the recording host could trap rdtsc/rdtscp (tracee/rdtsc.h).
enum class TscTrapping : uint8_t { kUnknown = 0, kTrapped = 1, kUntrapped = 2 };

enum class StartKind : uint8_t {
  kExec = 0,        // recorded from execve: replay execs the same program
  kCheckpoint = 1,  // recorded from a running process: replay restores the CRIU image
};

// The trace directory's header file: what was recorded and how to start its replay.
struct TraceHeader {
  uint32_t version = kFormatVersion;
  StartKind start = StartKind::kExec;
  std::string program;  // the path that was executed
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  std::string exe_copy;         // files/ name of the executable as it was at record time
  std::string interp_path;      // the ELF interpreter (PT_INTERP), empty for static programs
  std::string interp_copy;      // files/ name of the interpreter
  uint64_t at_random_addr = 0;  // kExec: where the kernel's 16 AT_RANDOM bytes live
  std::string at_random;        // kExec: their recorded value
  std::string checkpoint;       // kCheckpoint: directory of the CRIU images, relative to the trace
  int32_t initial_tid = 0;      // the recorded tid of the first (or attached) thread
  // kCheckpoint of a multi-threaded process: every other thread, {recorded tid, its tid in the
  // checkpoint} (the checkpoint's first thread is its process, recorded as initial_tid).
  std::vector<std::pair<int32_t, int32_t>> other_threads;
  std::string hostname;
  std::string kernel;
  int64_t start_realtime_ns = 0;
  TscTrapping rdtsc = TscTrapping::kUnknown;
  bool operator==(const TraceHeader&) const = default;
};

}  // namespace relive::trace
