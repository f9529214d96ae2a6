# The relive trace format, version 1 (trace::kFormatVersion). This comment is the one
# description of the on-disk layout; src/wire/ implements it and src/wire/trace_types.h holds the
# plain C++ types it converts to and from.
#
# A trace is a directory:
#
#   header       8-byte magic "RLVTRACE", u32 format version, u32 payload length,
#                u32 xxhash32 of the payload, then the payload: one Cap'n Proto message (flat
#                array, segment table included) whose root is TraceHeader. Written once,
#                atomically (temporary file + rename).
#
#   events       an append-only sequence of frames ("segments"), readable while it grows:
#                  offset  size  field
#                       0     4  magic "RLSG"
#                       4     2  format version
#                       6     2  flags (0; any other value is rejected)
#                       8     8  sequence number: 0, 1, 2, ... with no gaps
#                      16     4  event count (at most raw length / 12)
#                      20     4  raw payload length (at most 64 MiB)
#                      24     4  compressed payload length
#                      28     4  xxhash32 of the compressed payload
#                      32     4  xxhash32 of header bytes 0..31
#                      36     -  the LZ4 block (LZ4_compress_default) of the raw payload
#                The raw payload is `event count` events, each a u32 length (at least 8)
#                followed by that many bytes: one Cap'n Proto message (flat array) whose root
#                is Event. A reader rejects a raw length over 255 x the compressed length
#                (more than LZ4 can expand) before allocating for it. The magic and version
#                keep their offsets in every format version.
#
#   files/       content-addressed copies of the executable, the interpreter and mapped files
#                as they were at record time; a copy's name is the 32 hex digits of the
#                XXH3-128 of its contents.
#
#   checkpoint/  CRIU images, when the recording started from a running process.
#
# All integers are little-endian. xxhash32 is XXH32 with seed 0x52454c56 ("RELV").
# Bulk file contents never travel inside these messages; memory a syscall wrote does, because
# it is small and belongs to its event.
#
# Evolution: only add fields; never renumber, retype or reuse an ordinal. Bump the format
# version when a reader of the old version would misread the new one, and keep a golden trace
# of every old version under tests/data/golden/.

@0xd3c6a2b1e4f50917;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("relive::wire");

enum StartKind {
  exec @0;        # recorded from execve: replay execs the same program
  checkpoint @1;  # recorded from a running process: replay restores the CRIU image
}

# Paths, argv and environment strings are Data, not Text: Linux lets them hold any bytes, and
# Text promises UTF-8 to readers in other languages.
struct TraceHeader {
  start @0 :StartKind;
  program @1 :Data;
  argv @2 :List(Data);
  env @3 :List(Data);
  cwd @4 :Data;
  exeCopy @5 :Text;          # files/ name
  interpPath @6 :Data;       # empty for static programs
  interpCopy @7 :Text;       # files/ name
  atRandomAddr @8 :UInt64;
  atRandom @9 :Data;         # the 16 AT_RANDOM bytes
  checkpoint @10 :Text;      # directory relative to the trace
  initialTid @11 :Int32;
  hostname @12 :Text;
  kernel @13 :Text;
  startRealtimeNs @14 :Int64;
  rdtsc @15 :TscTrapping;    # whether rdtsc/rdtscp trapped on the recording host
  otherThreads @16 :List(ThreadMapping);  # checkpoint: the threads besides the first
}

# A thread of a process checkpointed with several: its tid in the recording (the original
# process) and in the checkpoint (the copy CRIU dumped, where it was recreated).
struct ThreadMapping {
  recordedTid @0 :Int32;
  checkpointTid @1 :Int32;
}

enum TscTrapping {
  unknown @0;    # a trace from before this was recorded
  trapped @1;    # PR_SET_TSC works: every rdtsc/rdtscp of the program is in the log
  untrapped @2;  # the prctl is accepted but rdtsc never faults (some hypervisors): not logged
}

enum SyscallMode {
  emulated @0;  # not executed at replay
  native @1;    # executed at replay, result fixed up
  mapFile @2;   # replay maps the saved copy named by `file`
}

enum OutputStream {
  noStream @0;
  toStdout @1;
  toStderr @2;
}

# A span of tracee memory a syscall wrote.
struct MemWrite {
  addr @0 :UInt64;
  data @1 :Data;
}

struct SyscallEvent {
  tid @0 :Int32;
  nr @1 :Int32;
  args @2 :List(UInt64);  # exactly 6
  result @3 :Int64;
  mode @4 :SyscallMode;
  writes @5 :List(MemWrite);
  stream @6 :OutputStream;
  dataHash @7 :UInt64;
  file @8 :Text;
  sharedKey @9 :Text;  # a shared writable file mapping: the file's identity (dev:inode) at record
  continued @10 :Bool;  # a write made by the fast path of which only `result` bytes went out
                        # there; its rest is this thread's next (traced) write
}

struct RdtscEvent {
  tid @0 :Int32;
  tsc @1 :UInt64;
  aux @2 :UInt32;
  rdtscp @3 :Bool;
}

struct SignalEvent {
  tid @0 :Int32;
  signo @1 :Int32;
  siginfo @2 :Data;  # raw siginfo_t, at most 128 bytes
}

struct ThreadExitEvent {
  tid @0 :Int32;
}

# A thread entered a syscall and other threads ran before it completed.
struct SyscallEntryEvent {
  tid @0 :Int32;
  nr @1 :Int32;
}

# Recording of an attached process stopped here; the process went on untraced.
struct DetachEvent {
  parkedTid @0 :Int32;  # a freeze: the thread left at the entry of its next syscall (0: none said)
}

# A thread that ran in user space without a syscall while others waited for their turn was
# stopped here by the tracer, in a loop whose every pass leaves its state unchanged (a spin-wait).
# Replay runs the thread to `regs`'s instruction pointer until its registers equal `regs` and its
# state hash (FPU/SSE registers and writable memory) equals `stateHash`.
struct PreemptEvent {
  tid @0 :Int32;
  regs @1 :Data;       # the general registers (x86-64 user_regs_struct, 216 bytes)
  stateHash @2 :UInt64;
}

# The tracer patched the syscall site at `site` (a `syscall; cmp $-4096,%rax` in the program's
# code) into a jump to a stub at `stub`, in the stub page at `stubPage` (mapped for it when
# `newPage`), as thread `tid` was about to run on from that site's syscall exit. Replay makes the
# same patch at the same point (since format version 2).
struct SitePatchEvent {
  tid @0 :Int32;
  site @1 :UInt64;
  stub @2 :UInt64;
  stubPage @3 :UInt64;
  newPage @4 :Bool;
}

struct ProcessExitEvent {
  status @0 :Int32;  # wait(2) status
}

struct Event {
  union {
    syscall @0 :SyscallEvent;
    rdtsc @1 :RdtscEvent;
    signal @2 :SignalEvent;
    threadExit @3 :ThreadExitEvent;
    processExit @4 :ProcessExitEvent;
    syscallEntry @5 :SyscallEntryEvent;
    detach @6 :DetachEvent;
    preempt @7 :PreemptEvent;
    sitePatch @8 :SitePatchEvent;
  }
}
