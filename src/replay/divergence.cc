#include "replay/divergence.h"

#include <fmt/format.h>

#include "trace/syscall_names.h"

namespace relive::replay {

std::string format_call(int nr, const tracee::SyscallArgs& a) {
  const char* name = trace::syscall_name(nr);
  std::string n = name ? name : fmt::format("syscall_{}", nr);
  return fmt::format("{}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x})", n, a[0], a[1], a[2], a[3],
                     a[4], a[5]);
}

Status divergence(uint64_t index, int32_t tid, const std::string& expected,
                  const std::string& actual) {
  return Status::Divergence(fmt::format("at event #{} (thread {}): expected {}, but the program {}",
                                        index, tid, expected, actual));
}

Status check_call(uint64_t index, const trace::SyscallEvent& ev, int nr,
                  const tracee::SyscallArgs& args) {
  if (nr == ev.nr && args == ev.args) return Status::Ok();
  return divergence(index, ev.tid, format_call(ev.nr, ev.args), "called " + format_call(nr, args));
}

}  // namespace relive::replay
