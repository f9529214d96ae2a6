#include "tracee/syscall_buffer.h"

#include <fmt/format.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/check.h"
#include "tracee/fast_path_abi.h"
#include "tracee/fast_path_blob.h"
#include "tracee/vdso.h"

namespace relive::tracee {
namespace {

bool is_error(int64_t result) { return result < 0 && result > -4096; }

}  // namespace

bool fast_path_clock_call(int nr) {
  return nr == SYS_clock_gettime || nr == SYS_gettimeofday || nr == SYS_time;
}

bool fast_path_site_call(int nr, const SyscallArgs& args) {
  relive_fp_rule rule;
  return nr >= 0 && relive_fp_rule_of(static_cast<uint64_t>(nr), args.data(), &rule) != 0;
}

bool fast_path_scattered_call(int nr, const SyscallArgs& args) {
  relive_fp_rule rule;
  return nr >= 0 && relive_fp_rule_of(static_cast<uint64_t>(nr), args.data(), &rule) != 0 &&
         relive_fp_parts(&rule);
}

namespace {

// The rule of a site call (fast_path_site_call is true).
relive_fp_rule rule_of(const BufferedCall& c) {
  relive_fp_rule rule;
  bool known = relive_fp_rule_of(static_cast<uint64_t>(c.nr), c.args.data(), &rule) != 0;
  RELIVE_CHECK(known, "not a call of the fast path's");
  return rule;
}

// Whether a site call's arguments are ones the fast path makes (its size bounds and positions)
// and `result`, with `len` bytes in its entry and `continued`, is what it would have logged.
bool site_entry_fits(const relive_fp_rule& rule, const BufferedCall& c, uint64_t len,
                     bool continued) {
  uint64_t max = relive_fp_out_max(&rule, c.args.data());
  if ((!rule.vector && max > RELIVE_FP_MAX_DATA) || len > max) return false;
  if (rule.positioned && static_cast<int64_t>(c.args[3]) < 0) return false;
  if (c.result < 0) return is_error(c.result) && len == 0 && !continued;
  // A writev's total is its iovecs' (in the program's memory): bounded by the entry's limit only.
  bool bounded = !rule.vector && (rule.takes_bytes || rule.out == RELIVE_FP_OUT_RESULT ||
                                  rule.out == RELIVE_FP_OUT_RESULT_TIMES);
  if (bounded && static_cast<uint64_t>(c.result) > c.args[rule.count]) return false;
  // Parts: their pairs say what follows (held to the result where they are read).
  if (relive_fp_parts(&rule)) return !continued && len >= relive_fp_head(&rule, c.args.data());
  if (len != relive_fp_out_len(&rule, c.args.data(), c.result)) return false;
  return !continued || (rule.takes_bytes && (rule.vector || len < c.args[rule.count]));
}

// Whether the parts of a readv or recvmsg (in order, as they are logged) are what the call wrote:
// a readv's add up to its result, in no more parts than iovecs; a recvmsg's are its msghdr (at
// args[1]) and then at most the sender's address and one part per iovec, which add up to the
// result and the address.
bool parts_fit(const relive_fp_rule& rule, const BufferedCall& c,
               const std::vector<std::pair<uint64_t, std::string>>& parts) {
  uint64_t sum = 0;
  for (const auto& [addr, bytes] : parts) {
    if (addr == 0 || bytes.empty()) return false;
    sum += bytes.size();
  }
  uint64_t result = static_cast<uint64_t>(std::max<int64_t>(c.result, 0));
  if (rule.out == RELIVE_FP_OUT_IOV) return parts.size() <= c.args[rule.count] && sum == result;
  if (parts.empty()) return c.result < 0;
  return parts.size() <= RELIVE_FP_MSG_PARTS && parts[0].first == c.args[rule.arg] &&
         parts[0].second.size() == RELIVE_FP_MSGHDR_BYTES &&
         sum >= RELIVE_FP_MSGHDR_BYTES + result &&
         sum <= RELIVE_FP_MSGHDR_BYTES + RELIVE_FP_MAX_NAME + result;
}

// A readv's or recvmsg's entry data: its (address, length) pairs, then their bytes. Pairs of
// zero length are unused; pairs that name more bytes than follow, or parts that are not what the
// call wrote, are Corruption.
Result<std::vector<std::pair<uint64_t, std::string>>> decode_parts(uint64_t index,
                                                                   const relive_fp_rule& rule,
                                                                   const BufferedCall& c,
                                                                   std::string_view data) {
  uint64_t pairs = relive_fp_head(&rule, c.args.data()) / RELIVE_FP_IOV_PAIR_BYTES;
  std::string_view bytes = data.substr(pairs * RELIVE_FP_IOV_PAIR_BYTES);
  std::vector<std::pair<uint64_t, std::string>> parts;
  for (uint64_t i = 0; i < pairs; ++i) {
    uint64_t pair[2];
    std::memcpy(pair, data.data() + i * RELIVE_FP_IOV_PAIR_BYTES, sizeof pair);
    if (pair[1] == 0) continue;
    if (pair[1] > bytes.size())
      return Status::Corruption(fmt::format(
          "syscall buffer: entry {} ({} returning {}) names a part of {} bytes at {:#x} past "
          "its bytes",
          index, syscall_name(c.nr), c.result, pair[1], pair[0]));
    parts.emplace_back(pair[0], std::string(bytes.substr(0, pair[1])));
    bytes.remove_prefix(pair[1]);
  }
  if (!bytes.empty() || !parts_fit(rule, c, parts))
    return Status::Corruption(fmt::format(
        "syscall buffer: entry {} ({} returning {}) has parts that are not what it wrote", index,
        syscall_name(c.nr), c.result));
  return parts;
}

// A site call's entry after its call words: the length word and the data (fast_path_abi.h). What
// the fast path itself could not have written is Corruption.
Status decode_site_call(uint64_t index, uint64_t len_word, std::string_view data, BufferedCall* c) {
  uint64_t len = len_word & ~RELIVE_FP_CONTINUED;
  bool continued = (len_word & RELIVE_FP_CONTINUED) != 0;
  relive_fp_rule rule = rule_of(*c);
  if (len != data.size() || !site_entry_fits(rule, *c, len, continued))
    return Status::Corruption(fmt::format(
        "syscall buffer: entry {} ({} {} bytes, result {}{}) is not one the fast path writes",
        index, syscall_name(c->nr) != nullptr ? syscall_name(c->nr) : "?", len, c->result,
        continued ? ", continued" : ""));
  if (rule.takes_bytes) {
    c->written.assign(data);
    c->continued = continued;
  } else if (relive_fp_parts(&rule) && len > 0) {
    RELIVE_ASSIGN_OR_RETURN(c->scattered, decode_parts(index, rule, *c, data));
  } else if (rule.out == RELIVE_FP_OUT_FILE_ID && len > 0) {
    std::memcpy(&c->file_dev, data.data(), sizeof c->file_dev);
    std::memcpy(&c->file_ino, data.data() + sizeof c->file_dev, sizeof c->file_ino);
  } else if (len > 0) {
    c->write_addr = c->args[rule.arg];
    c->write_data.assign(data);
  }
  return Status::Ok();
}

}  // namespace

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
  if (entries.size() != header.next - header.logged)
    return Status::Corruption(fmt::format("syscall buffer: {} bytes of entries for {} bytes",
                                          entries.size(), header.next - header.logged));
  std::vector<BufferedCall> out;
  for (uint64_t at = 0, i = 0; at < entries.size(); ++i) {
    SyscallBufferEntry e;
    std::memcpy(&e, entries.data() + at, sizeof e);
    BufferedCall c;
    c.nr = e.nr > 1024 ? -1 : static_cast<int>(e.nr);
    std::copy(std::begin(e.args), std::end(e.args), c.args.begin());
    c.result = e.result;
    if (!fast_path_clock_call(c.nr) && !fast_path_site_call(c.nr, c.args))
      return Status::Corruption(fmt::format(
          "syscall buffer: entry {} is syscall {} with arguments the fast path does not take", i,
          e.nr));
    if (!fast_path_clock_call(c.nr)) {
      uint64_t len_word;
      std::memcpy(&len_word, entries.data() + at + RELIVE_FP_CALL_BYTES, sizeof len_word);
      uint64_t len = len_word & ~RELIVE_FP_CONTINUED;
      uint64_t bytes = len > RELIVE_FP_MAX_ENTRY_DATA
                           ? UINT64_MAX
                           : (RELIVE_FP_DATA_OFFSET + len + sizeof e - 1) / sizeof e * sizeof e;
      if (bytes > entries.size() - at)
        return Status::Corruption(fmt::format(
            "syscall buffer: entry {} says {} bytes of data, past the last entry", i, len));
      RELIVE_RETURN_IF_ERROR(
          decode_site_call(i, len_word, entries.substr(at + RELIVE_FP_DATA_OFFSET, len), &c));
      out.push_back(std::move(c));
      at += bytes;
      continue;
    }
    at += sizeof e;
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
  if (ip >= kFastPathBlobAddr && ip < kFastPathBlobAddr + kFastPathBlobSize) return true;
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

namespace {

constexpr uint64_t kSlot = sizeof(SyscallBufferEntry);

// The bytes a replayed site call's entry holds: what the call put in the program's memory, or
// room for what a write takes from it.
uint64_t replayed_len(const BufferedCall& c) {
  relive_fp_rule rule = rule_of(c);
  if (relive_fp_parts(&rule) && c.result >= 0) {  // the pairs, then the parts' bytes
    uint64_t len = relive_fp_head(&rule, c.args.data());
    for (const auto& part : c.scattered) len += part.second.size();
    return len;
  }
  return relive_fp_out_len(&rule, c.args.data(), c.result);
}

// Slots before each prefilled call, and after the last: at[i] for call i, at[n] in all.
std::vector<uint64_t> slot_starts(const std::vector<BufferedCall>& calls) {
  std::vector<uint64_t> at{0};
  for (const BufferedCall& c : calls) at.push_back(at.back() + buffer_slots(c));
  return at;
}

}  // namespace

uint64_t buffer_slots(const BufferedCall& c) {
  if (fast_path_clock_call(c.nr)) return 1;
  return (RELIVE_FP_DATA_OFFSET + replayed_len(c) + kSlot - 1) / kSlot;
}

Status prefill_syscall_buffer(const Task& task, const std::vector<BufferedCall>& calls) {
  std::vector<uint64_t> at = slot_starts(calls);
  RELIVE_CHECK(at.back() <= kBufferCapacity, "prefill beyond the buffer's capacity");
  std::string bytes(sizeof(SyscallBufferHeader) + at.back() * kSlot, '\0');
  SyscallBufferHeader h;
  h.next = h.logged = kFirstEntryAddr;
  h.room = at.back();
  h.mode = kReplayMode;
  std::memcpy(bytes.data(), &h, sizeof h);
  for (size_t i = 0; i < calls.size(); ++i) {
    const BufferedCall& c = calls[i];
    RELIVE_CHECK(replayable_from_buffer(c) || replayable_site_call(c),
                 "prefill of a call the fast path cannot return");
    SyscallBufferEntry e;
    e.nr = -static_cast<uint64_t>(c.nr);  // negated: compared with lea (see the header)
    for (size_t a = 0; a < 6; ++a) e.args[a] = -c.args[a];
    e.result = c.result;
    char* entry = bytes.data() + sizeof h + at[i] * kSlot;
    if (!fast_path_clock_call(c.nr)) {
      // The call words, the length word, then what the call wrote (a write's space stays zero).
      uint64_t len_word = replayed_len(c) | (c.continued ? RELIVE_FP_CONTINUED : 0);
      std::memcpy(entry, &e, RELIVE_FP_CALL_BYTES);
      std::memcpy(entry + RELIVE_FP_CALL_BYTES, &len_word, sizeof len_word);
      char* data = entry + RELIVE_FP_DATA_OFFSET;
      if (!c.scattered.empty()) {  // its parts' pairs (the rest zero), then their bytes
        relive_fp_rule rule = rule_of(c);
        char* bytes_at = data + relive_fp_head(&rule, c.args.data());
        for (size_t p = 0; p < c.scattered.size(); ++p) {
          const uint64_t pair[2] = {c.scattered[p].first, c.scattered[p].second.size()};
          std::memcpy(data + p * RELIVE_FP_IOV_PAIR_BYTES, pair, sizeof pair);
          std::memcpy(bytes_at, c.scattered[p].second.data(), c.scattered[p].second.size());
          bytes_at += c.scattered[p].second.size();
        }
        continue;
      }
      std::memcpy(data, c.write_data.data(), c.write_data.size());
      continue;
    }
    std::memcpy(e.out, c.write_data.data(), c.write_data.size());
    std::memcpy(entry, &e, sizeof e);
  }
  return task.write_mem(kSyscallBufferAddr, bytes.data(), bytes.size());
}

bool replayable_site_call(const BufferedCall& c) {
  if (fast_path_clock_call(c.nr) || !fast_path_site_call(c.nr, c.args)) return false;
  relive_fp_rule rule = rule_of(c);
  uint64_t len = c.result < 0 ? 0 : replayed_len(c);
  if (!site_entry_fits(rule, c, len, c.continued)) return false;
  if (relive_fp_parts(&rule))
    return c.write_addr == 0 && c.write_data.empty() && parts_fit(rule, c, c.scattered);
  if (!c.scattered.empty()) return false;
  if (rule.takes_bytes || len == 0 || rule.out == RELIVE_FP_OUT_FILE_ID)
    return c.write_addr == 0 && c.write_data.empty();
  return c.write_addr == c.args[rule.arg] && c.write_data.size() == len;
}

Result<uint64_t> syscall_buffer_taken(const Task& task, const std::vector<BufferedCall>& calls) {
  SyscallBufferHeader h;
  RELIVE_RETURN_IF_ERROR(task.read_mem(kSyscallBufferAddr, &h, sizeof h));
  std::vector<uint64_t> at = slot_starts(calls);
  uint64_t used = (h.next - kFirstEntryAddr) / kSlot;
  auto it = std::find(at.begin(), at.end(), used);
  if (h.mode != kReplayMode || h.next < kFirstEntryAddr ||
      (h.next - kFirstEntryAddr) % kSlot != 0 || it == at.end() || h.room != at.back() - used)
    return Status::Corruption(
        fmt::format("syscall buffer: mode {}, next entry at {:#x}, room {} after {} prefilled "
                    "calls: not what the replayer or the trampolines left",
                    h.mode, h.next, h.room, calls.size()));
  return static_cast<uint64_t>(it - at.begin());
}

Status pass_syscall_buffer_entry(const Task& task, uint64_t taken,
                                 const std::vector<BufferedCall>& calls) {
  RELIVE_CHECK(taken < calls.size(), "no prefilled entry to pass");
  std::vector<uint64_t> at = slot_starts(calls);
  const uint64_t words[2] = {kFirstEntryAddr + at[taken + 1] * kSlot, at.back() - at[taken + 1]};
  return task.write_mem(kNextAddr, words, sizeof words);
}

Result<std::vector<std::string>> replayed_write_bytes(const Task& task,
                                                      const std::vector<BufferedCall>& calls,
                                                      uint64_t from, uint64_t to) {
  RELIVE_CHECK(from <= to && to <= calls.size(), "no such prefilled calls");
  std::vector<uint64_t> at = slot_starts(calls);
  std::vector<std::string> out(to - from);
  if (from == to) return out;
  RELIVE_ASSIGN_OR_RETURN(std::string entries, task.read_mem(kFirstEntryAddr + at[from] * kSlot,
                                                             (at[to] - at[from]) * kSlot));
  for (uint64_t i = from; i < to; ++i) {
    const BufferedCall& c = calls[i];
    if (fast_path_clock_call(c.nr) || !rule_of(c).takes_bytes) continue;
    out[i - from] =
        entries.substr((at[i] - at[from]) * kSlot + RELIVE_FP_DATA_OFFSET, replayed_len(c));
  }
  return out;
}

}  // namespace relive::tracee
