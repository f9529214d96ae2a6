// The syscall buffer: where a recorded process's fast path (the trampolines of vdso.h) leaves the
// results of the calls it made without a ptrace stop, for the tracer to log at the thread's next
// stop; and where a replayer leaves the logged results for the same trampolines to return.
//
// It is a fixed private mapping right after the trampoline page, mapped into every recorded and
// replayed process (so address-space layouts match) but written only while an exec-mode recorder
// enables it or a replayer fills it (below). A header holds two words the trampolines read and
// write without touching the flags (so that a fast call leaves every register exactly as the traced
// call would):
//   next: the address of the next free entry;
//   room: how many more entries the fast path may append. Zero sends every call down the traced
//         path: the page is fresh (attach, before the tracer's first look), a replay is
//         between its prefills, the buffer is full, or the tracer wants the thread to stop soon
//         (another thread waits for the turn, a signal waits for a syscall boundary);
// and two only the tracer writes:
//   logged: the entries before it are in the log already;
//   mode:   0 while recording; kReplayMode while a replayer fills the buffer (below).
//
// A trampoline takes its room (from the value it tested) before the call and writes its entry
// completely before it advances `next`, so a tracee that dies half-way leaves nothing torn
// behind, and a `room` the tracer lowered meanwhile never wraps. (The fast path of patched
// sites takes room for the largest entry a call may leave and gives back what it did not use
// with a compare-and-swap, which fails, keeping the tracer's hold, if the tracer wrote `room`
// meanwhile.) A thread can stop anywhere,
// inside a trampoline too (an interrupt, a signal), for instance after it loaded `next` and
// before it stored the advanced value. So the tracer empties the buffer (next = logged = the
// first entry) only when the thread stopped outside the fast trampolines; inside, it only moves
// `logged` up, and the entry in flight lands behind it. One thread of a recording runs user code
// at a time, so the process's threads share one buffer: everything in it belongs to the thread
// that last ran.
//
// What the fast path handles (everything else is a traced call, as before): the vDSO's
// clock_gettime (any clock, any pointer: a bad one is the kernel's EFAULT, logged), gettimeofday
// with a time value and no time zone, and time(NULL), through the trampolines; and the calls of
// patched libc syscall sites that fast_path_abi.h's rules take, through the fast-path blob.
//
// Replay runs the same trampolines the other way round. The replayer, about to resume a thread
// whose next logged events are such calls and then one that stops it anyway (a traced syscall, an
// rdtsc), fills the buffer with those calls (prefill_syscall_buffer) and sets `room` to their
// count. A trampoline then compares the call it is asked to make with the next entry, number and
// all six argument registers as the traced replay would, and on a match returns the logged result
// and writes the logged bytes without entering the kernel. Any difference sends the call down the
// traced path, where the replayer reports the divergence at that event; at the thread's next stop
// the replayer checks every entry was taken (syscall_buffer_taken). The entries hold the number
// and arguments negated, so that a lea can compare them without touching the flags; r11 gets the
// flags (pushf; pop) as the kernel's `syscall` leaves them.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "relive/result.h"
#include "tracee/syscall_table.h"
#include "tracee/task.h"

namespace relive::tracee {

inline constexpr uint64_t kSyscallBufferAddr = 0x70000002000ull;
inline constexpr uint64_t kSyscallBufferSize = 1024 * 1024;

struct SyscallBufferHeader {
  uint64_t next = 0;
  uint64_t room = 0;
  uint64_t logged = 0;
  uint64_t mode = 0;
  uint64_t reserved[4] = {};
};
static_assert(sizeof(SyscallBufferHeader) == 64);

// One clock call, as a trampoline writes it: all six argument registers, as a traced call's entry
// logs them (replay compares them all). A replayer's entries hold the number and arguments
// negated. It is one 80-byte slot; a site call's entry (fast_path_abi.h) takes one or more whole
// slots, and `room` counts slots.
struct SyscallBufferEntry {
  uint64_t nr = 0;
  uint64_t args[6] = {};
  int64_t result = 0;
  unsigned char out[16] = {};  // what the call wrote to the program's memory, when it succeeded
};
static_assert(sizeof(SyscallBufferEntry) == 80);

inline constexpr uint64_t kNextAddr = kSyscallBufferAddr + offsetof(SyscallBufferHeader, next);
inline constexpr uint64_t kRoomAddr = kSyscallBufferAddr + offsetof(SyscallBufferHeader, room);
inline constexpr uint64_t kModeAddr = kSyscallBufferAddr + offsetof(SyscallBufferHeader, mode);
inline constexpr uint64_t kReplayMode = 1;
inline constexpr uint64_t kFirstEntryAddr = kSyscallBufferAddr + sizeof(SyscallBufferHeader);
inline constexpr uint64_t kBufferCapacity =
    (kSyscallBufferSize - sizeof(SyscallBufferHeader)) / sizeof(SyscallBufferEntry);

// A buffered call as the log records it: number, arguments, result and the program memory the
// call wrote (one range for the calls the fast path takes, but a readv's).
struct BufferedCall {
  int nr = 0;
  std::array<uint64_t, 6> args{};
  int64_t result = 0;
  uint64_t write_addr = 0;  // 0: the call wrote nothing
  std::string write_data;
  // A readv or recvmsg: the parts of the program's memory it wrote, in order (write_addr stays
  // 0): a recvmsg's msghdr, the sender's address, then the filled part of each iovec.
  std::vector<std::pair<uint64_t, std::string>> scattered;
  // A call that took bytes from the program's memory (write, pwrite64, sendto): the bytes that
  // went out;
  // `continued`: only these, the rest went out through the traced path right after
  // (fast_path_abi.h).
  std::string written;
  bool continued = false;
  // openat and close: the identity (st_dev, st_ino) of the file opened or closed (zeros where
  // there was none), which tells the recorder where the program's writes went.
  uint64_t file_dev = 0;
  uint64_t file_ino = 0;
};

// Whether the fast path handles a call: the vDSO's clock calls (the trampolines), and the calls
// of patched syscall sites that fast_path_abi.h's rules take (fast_path.c).
bool fast_path_clock_call(int nr);
bool fast_path_site_call(int nr, const SyscallArgs& args);
// Whether a site call's entry is parts (readv, recvmsg): its writes are BufferedCall::scattered.
bool fast_path_scattered_call(int nr, const SyscallArgs& args);

// Decodes a buffer: `header` as read from the process and `entries`, the bytes from
// header.logged up to header.next. A header or entry neither the trampolines nor the tracer
// could have written (the program scribbled over the page) is Status::Corruption with what is
// wrong.
Result<std::vector<BufferedCall>> decode_syscall_buffer(const SyscallBufferHeader& header,
                                                        std::string_view entries);

// The buffer of the stopped `task`'s process: reads what the fast path appended and the log does
// not have yet (nothing from a page no recorder enabled).
Result<std::vector<BufferedCall>> read_syscall_buffer(const Task& task,
                                                      SyscallBufferHeader* header);

// Whether `ip` lies in the fast trampolines or the fast-path blob, where the buffer must not be
// emptied (see above).
bool in_fast_trampoline(uint64_t ip);

// Empties the buffer and lets the fast path append `room` entries (0: none). Only for a thread
// stopped outside the fast trampolines.
Status reset_syscall_buffer(const Task& task, uint64_t room);
// Marks everything up to `next` as logged, leaving the trampolines' words alone.
Status mark_syscall_buffer_logged(const Task& task, uint64_t next);
// Sends the fast path's next calls down the traced path. Safe while the thread runs: a trampoline
// that tested `room` just before may still store the value it took (one less than it saw), so
// the hold may be lost for a moment, but `room` never exceeds the free entries. The interrupt
// that follows a hold stops the thread, and its drain holds the buffer for good.
Status stop_syscall_buffer(const Task& task);

// Replay: whether `call` is one a trampoline can take from the buffer (its form and what it
// wrote are what the fast path's record side would have logged).
bool replayable_from_buffer(const BufferedCall& call);
// Replay: whether a logged site call has a form the fast path (fast_path.c) can answer: its
// rule's, with the out-bytes the rule says.
bool replayable_site_call(const BufferedCall& call);
// Replay: the slots `call` (replayable) takes in a prefilled buffer.
uint64_t buffer_slots(const BufferedCall& call);
// Replay: fills the buffer of the stopped `task`'s process with `calls` (each replayable, at
// most kBufferCapacity slots in all) for its trampolines and fast path to return in order.
Status prefill_syscall_buffer(const Task& task, const std::vector<BufferedCall>& calls);
// Replay: how many of the prefilled `calls` were returned; a header the replayer did not leave
// (the program scribbled over it) is Status::Corruption.
Result<uint64_t> syscall_buffer_taken(const Task& task, const std::vector<BufferedCall>& calls);
// Replay: passes over the next prefilled entry (the `taken`th of `calls`), which the replayer
// answered itself (the program made that call without a trampoline, with syscall(2)).
Status pass_syscall_buffer_entry(const Task& task, uint64_t taken,
                                 const std::vector<BufferedCall>& calls);
// Replay: the bytes each replayed write among `calls[from, to)` left in its entry (fast_path.c),
// for the replayer to check against the log's hash and to reproduce the program's output from;
// an empty string for the other calls. One read of the buffer.
Result<std::vector<std::string>> replayed_write_bytes(const Task& task,
                                                      const std::vector<BufferedCall>& calls,
                                                      uint64_t from, uint64_t to);

}  // namespace relive::tracee
