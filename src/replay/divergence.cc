#include "replay/divergence.h"

#include <fmt/format.h>

#include "tracee/syscall_table.h"

namespace relive::replay {

std::string format_call(int nr, const tracee::SyscallArgs& a) {
  const char* name = tracee::syscall_name(nr);
  std::string n = name ? name : fmt::format("syscall_{}", nr);
  int count = tracee::syscall_arg_count(nr);
  std::string out = n + "(";
  for (int i = 0; i < count && i < 6; ++i) out += fmt::format("{}{:#x}", i ? ", " : "", a[i]);
  return out + ")";
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
