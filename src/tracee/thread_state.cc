#include "tracee/thread_state.h"

#include <fcntl.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/hash.h"
#include "common/scoped_fd.h"
#include "tracee/inject.h"
#include "tracee/syscall_buffer.h"
#include "tracee/vdso.h"

namespace relive::tracee {
namespace {

constexpr uint64_t kDebugFlags = (1u << 8) | (1u << 16);  // TF, RF

struct Range {
  uint64_t start = 0;
  uint64_t end = 0;
  bool anonymous = false;  // an absent page reads as zeros (not a file's contents)
};

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62;
constexpr std::string_view kZeroPage = "Z";  // what an all-zero page contributes

bool all_zero(const char* p) {
  for (size_t i = 0; i < kPage; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != 0) return false;
  }
  return true;
}

// The syscall buffer is written only at record (syscall_buffer.h): no part of the state.
bool relive_owned(uint64_t start) {
  return start == kScratchAddr || start == kTrampolineAddr || start == kSyscallBufferAddr;
}

Result<std::vector<Range>> writable_ranges(pid_t tid) {
  std::ifstream maps("/proc/" + std::to_string(tid) + "/maps");
  if (!maps) return Status::IoError("cannot read /proc/" + std::to_string(tid) + "/maps");
  std::vector<Range> out;
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string span, perms, offset, dev, inode, name;
    in >> span >> perms >> offset >> dev >> inode >> name;
    size_t dash = span.find('-');
    if (dash == std::string::npos || perms.size() < 2 || perms[1] != 'w') continue;
    if (name == "[vvar]" || name == "[vdso]" || name == "[vsyscall]" || name == "[vvar_vclock]")
      continue;
    Range r{std::stoull(span.substr(0, dash), nullptr, 16),
            std::stoull(span.substr(dash + 1), nullptr, 16), inode == "0"};
    if (relive_owned(r.start)) continue;
    out.push_back(r);
  }
  return out;
}

}  // namespace

bool same_regs(const Regs& a, const Regs& b) {
  Regs x = a, y = b;
  x.eflags &= ~kDebugFlags;
  y.eflags &= ~kDebugFlags;
  return std::memcmp(&x, &y, sizeof x) == 0;
}

Result<uint64_t> state_hash(const Task& task) {
  StreamHash128 h;
  user_fpregs_struct fp{};
  if (::ptrace(PTRACE_GETFPREGS, task.tid(), nullptr, &fp) != 0)
    return PosixError("PTRACE_GETFPREGS", errno);
  h.update(std::string_view(reinterpret_cast<const char*>(fp.st_space), sizeof fp.st_space));
  h.update(std::string_view(reinterpret_cast<const char*>(fp.xmm_space), sizeof fp.xmm_space));
  h.update(std::string_view(reinterpret_cast<const char*>(&fp.mxcsr), sizeof fp.mxcsr));
  RELIVE_ASSIGN_OR_RETURN(std::vector<Range> ranges, writable_ranges(task.tid()));
  std::string proc = "/proc/" + std::to_string(task.tid());
  ScopedFd mem(::open((proc + "/mem").c_str(), O_RDONLY | O_CLOEXEC));
  if (!mem.valid()) return PosixError("open /proc/pid/mem", errno);
  ScopedFd pagemap(::open((proc + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC));
  // Each page contributes its bytes, or kZeroPage when it is all zeros, whether or not it is
  // present: an anonymous page never touched (thread stacks are mostly that) is not read at all,
  // and the hash does not depend on which pages happen to be faulted in.
  std::vector<uint64_t> entries;
  std::string buf;
  for (const Range& r : ranges) {
    h.update(std::string_view(reinterpret_cast<const char*>(&r.start), sizeof r.start));
    h.update(std::string_view(reinterpret_cast<const char*>(&r.end), sizeof r.end));
    for (uint64_t chunk = r.start; chunk < r.end;) {
      uint64_t pages = std::min<uint64_t>((r.end - chunk) / kPage, 256);
      entries.assign(pages, kPresent);  // without a pagemap, every page is read
      if (r.anonymous && pagemap.valid())
        (void)::pread(pagemap.get(), entries.data(), pages * 8,
                      static_cast<off_t>(chunk / kPage * 8));
      buf.resize(pages * kPage);
      for (uint64_t i = 0; i < pages;) {
        if (!(entries[i] & (kPresent | kSwapped))) {
          h.update(kZeroPage);
          ++i;
          continue;
        }
        uint64_t run = i;  // read the run of present pages starting at i at once
        while (run < pages && (entries[run] & (kPresent | kSwapped))) ++run;
        ssize_t got = ::pread(mem.get(), buf.data(), (run - i) * kPage,
                              static_cast<off_t>(chunk + i * kPage));
        for (uint64_t j = 0; j < run - i; ++j) {
          const char* page = buf.data() + j * kPage;
          if (got < static_cast<ssize_t>((j + 1) * kPage))
            h.update("?");  // unreadable (a guard page)
          else if (all_zero(page))
            h.update(kZeroPage);
          else
            h.update(std::string_view(page, kPage));
        }
        i = run;
      }
      chunk += pages * kPage;
    }
  }
  return hash64(h.hex());
}

}  // namespace relive::tracee
