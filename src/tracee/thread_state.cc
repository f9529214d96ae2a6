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
#include "tracee/vdso.h"

namespace relive::tracee {
namespace {

constexpr uint64_t kDebugFlags = (1u << 8) | (1u << 16);  // TF, RF

struct Range {
  uint64_t start = 0;
  uint64_t end = 0;
};

bool relive_owned(uint64_t start) { return start == kScratchAddr || start == kTrampolineAddr; }

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
            std::stoull(span.substr(dash + 1), nullptr, 16)};
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
  ScopedFd mem(::open(("/proc/" + std::to_string(task.tid()) + "/mem").c_str(),
                      O_RDONLY | O_CLOEXEC));
  if (!mem.valid()) return PosixError("open /proc/pid/mem", errno);
  std::string buf(1 << 20, '\0');
  for (const Range& r : ranges) {
    h.update(std::string_view(reinterpret_cast<const char*>(&r), sizeof r));
    for (uint64_t at = r.start; at < r.end;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), r.end - at));
      ssize_t got = ::pread(mem.get(), buf.data(), n, static_cast<off_t>(at));
      if (got <= 0) break;  // a guard or unreadable page: the range's address still counts
      h.update(std::string_view(buf.data(), static_cast<size_t>(got)));
      at += static_cast<uint64_t>(got);
    }
  }
  return hash64(h.hex());
}

char thread_run_state(pid_t tid) {
  std::ifstream stat("/proc/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return '?';
  size_t paren = line.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos || paren + 2 >= line.size()) return '?';
  return line[paren + 2];
}

}  // namespace relive::tracee
