#include "tracee/syscall_buffer.h"

#include <fmt/format.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/check.h"
#include "tracee/vdso.h"

namespace relive::tracee {
namespace {

bool is_error(int64_t result) { return result < 0 && result > -4096; }

}  // namespace

bool fast_path_syscall(int nr) {
  return nr == SYS_clock_gettime || nr == SYS_gettimeofday || nr == SYS_time;
}

Result<std::vector<BufferedCall>> decode_syscall_buffer(const SyscallBufferHeader& header,
                                                        std::string_view entries) {
  constexpr uint64_t kEnd = kFirstEntryAddr + kBufferCapacity * sizeof(SyscallBufferEntry);
  if (header.next < kFirstEntryAddr || header.next > kEnd ||
      (header.next - kFirstEntryAddr) % sizeof(SyscallBufferEntry) != 0)
    return Status::Corruption(
        fmt::format("syscall buffer: next entry at {:#x}, not an entry boundary", header.next));
  uint64_t used = (header.next - kFirstEntryAddr) / sizeof(SyscallBufferEntry);
  if (header.room > kBufferCapacity - used)
    return Status::Corruption(fmt::format("syscall buffer: room for {} more entries after {} of {}",
                                          header.room, used, kBufferCapacity));
  if (header.logged < kFirstEntryAddr || header.logged > header.next ||
      (header.logged - kFirstEntryAddr) % sizeof(SyscallBufferEntry) != 0)
    return Status::Corruption(fmt::format("syscall buffer: logged up to {:#x}, next entry at {:#x}",
                                          header.logged, header.next));
  uint64_t fresh = (header.next - header.logged) / sizeof(SyscallBufferEntry);
  if (entries.size() != fresh * sizeof(SyscallBufferEntry))
    return Status::Corruption(
        fmt::format("syscall buffer: {} bytes of entries for {} entries", entries.size(), fresh));
  std::vector<BufferedCall> out;
  out.reserve(fresh);
  for (uint64_t i = 0; i < fresh; ++i) {
    SyscallBufferEntry e;
    std::memcpy(&e, entries.data() + i * sizeof e, sizeof e);
    if (e.nr > 1024 || !fast_path_syscall(static_cast<int>(e.nr)))
      return Status::Corruption(
          fmt::format("syscall buffer: entry {} names syscall {}, not a fast-path call", i, e.nr));
    BufferedCall c;
    c.nr = static_cast<int>(e.nr);
    std::copy(std::begin(e.args), std::end(e.args), c.args.begin());
    c.result = e.result;
    // The trampolines copy what the kernel wrote only when the call succeeded.
    if (c.nr == SYS_clock_gettime && c.result == 0) c.write_addr = c.args[1];
    if (c.nr == SYS_gettimeofday && c.result == 0) c.write_addr = c.args[0];
    if (c.nr == SYS_gettimeofday && (c.args[0] == 0 || c.args[1] != 0))
      return Status::Corruption(
          fmt::format("syscall buffer: entry {} is a gettimeofday the fast path does not take", i));
    if (c.nr == SYS_time && c.args[0] != 0)
      return Status::Corruption(
          fmt::format("syscall buffer: entry {} is a time() the fast path does not take", i));
    if ((c.nr == SYS_clock_gettime || c.nr == SYS_gettimeofday) && c.result != 0 &&
        !is_error(c.result))
      return Status::Corruption(
          fmt::format("syscall buffer: entry {} returned {}, not 0 or an error", i, c.result));
    if (c.write_addr != 0) c.write_data.assign(reinterpret_cast<const char*>(e.out), 16);
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<BufferedCall>> read_syscall_buffer(const Task& task,
                                                      SyscallBufferHeader* header) {
  RELIVE_RETURN_IF_ERROR(task.read_mem(kSyscallBufferAddr, header, sizeof *header));
  if (header->next == 0 && header->room == 0 && header->logged == 0)
    return std::vector<BufferedCall>{};  // a page no recorder enabled
  if (header->next == header->logged && header->next == kFirstEntryAddr)
    return std::vector<BufferedCall>{};  // the common case: nothing appended
  bool sane = header->logged >= kFirstEntryAddr && header->next >= header->logged &&
              header->next - kFirstEntryAddr <= kSyscallBufferSize;
  std::string entries;
  if (sane && header->next > header->logged) {
    RELIVE_ASSIGN_OR_RETURN(entries, task.read_mem(header->logged, header->next - header->logged));
  }
  return decode_syscall_buffer(*header, entries);
}

bool in_fast_trampoline(uint64_t ip) {
  return ip >= kTrampolineAddr + kFastTrampolineOffset && ip < kTrampolineAddr + kFastTrampolineEnd;
}

Status reset_syscall_buffer(const Task& task, uint64_t room) {
  const uint64_t words[4] = {kFirstEntryAddr, room, kFirstEntryAddr, 0};
  return task.write_mem(kSyscallBufferAddr, words, sizeof words);
}

Status mark_syscall_buffer_logged(const Task& task, uint64_t next) {
  return task.write_mem(kSyscallBufferAddr + offsetof(SyscallBufferHeader, logged), &next,
                        sizeof next);
}

Status stop_syscall_buffer(const Task& task) {
  const uint64_t zero = 0;
  return task.write_mem(kRoomAddr, &zero, sizeof zero);
}

bool replayable_from_buffer(const BufferedCall& c) {
  uint64_t want_write = 0;  // where the fast path writes on success (0: nowhere)
  switch (c.nr) {
    case SYS_clock_gettime:
      want_write = c.args[1];
      break;
    case SYS_gettimeofday:
      if (c.args[0] == 0 || c.args[1] != 0) return false;
      want_write = c.args[0];
      break;
    case SYS_time:
      if (c.args[0] != 0) return false;
      return c.write_addr == 0;
    default:
      return false;
  }
  if (c.result != 0) return c.write_addr == 0 && is_error(c.result);
  return c.write_addr == want_write && c.write_data.size() == 16;
}

Status prefill_syscall_buffer(const Task& task, const std::vector<BufferedCall>& calls) {
  RELIVE_CHECK(calls.size() <= kBufferCapacity, "prefill beyond the buffer's capacity");
  std::string bytes(sizeof(SyscallBufferHeader) + calls.size() * sizeof(SyscallBufferEntry), '\0');
  SyscallBufferHeader h;
  h.next = h.logged = kFirstEntryAddr;
  h.room = calls.size();
  h.mode = kReplayMode;
  std::memcpy(bytes.data(), &h, sizeof h);
  for (size_t i = 0; i < calls.size(); ++i) {
    const BufferedCall& c = calls[i];
    RELIVE_CHECK(replayable_from_buffer(c), "prefill of a call the fast path cannot return");
    SyscallBufferEntry e;
    e.nr = -static_cast<uint64_t>(c.nr);  // negated: compared with lea (see the header)
    for (size_t a = 0; a < 6; ++a) e.args[a] = -c.args[a];
    e.result = c.result;
    std::memcpy(e.out, c.write_data.data(), c.write_data.size());
    std::memcpy(bytes.data() + sizeof h + i * sizeof e, &e, sizeof e);
  }
  return task.write_mem(kSyscallBufferAddr, bytes.data(), bytes.size());
}

Result<uint64_t> syscall_buffer_taken(const Task& task, uint64_t prefilled) {
  SyscallBufferHeader h;
  RELIVE_RETURN_IF_ERROR(task.read_mem(kSyscallBufferAddr, &h, sizeof h));
  uint64_t taken = (h.next - kFirstEntryAddr) / sizeof(SyscallBufferEntry);
  if (h.mode != kReplayMode || h.next < kFirstEntryAddr ||
      (h.next - kFirstEntryAddr) % sizeof(SyscallBufferEntry) != 0 || taken > prefilled ||
      h.room != prefilled - taken)
    return Status::Corruption(
        fmt::format("syscall buffer: mode {}, next entry at {:#x}, room {} after {} prefilled "
                    "calls: not what the replayer or the trampolines left",
                    h.mode, h.next, h.room, prefilled));
  return taken;
}

Status pass_syscall_buffer_entry(const Task& task, uint64_t taken, uint64_t prefilled) {
  RELIVE_CHECK(taken < prefilled, "no prefilled entry to pass");
  const uint64_t words[2] = {kFirstEntryAddr + (taken + 1) * sizeof(SyscallBufferEntry),
                             prefilled - taken - 1};
  return task.write_mem(kNextAddr, words, sizeof words);
}

}  // namespace relive::tracee
