#include "tracee/seccomp_filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include "common/check.h"
#include "tracee/fast_path_blob.h"
#include "tracee/syscall_policy.h"
#include "tracee/vdso.h"

namespace relive::tracee {
namespace {

sock_filter stmt(uint16_t code, uint32_t k) { return BPF_STMT(code, k); }
sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return BPF_JUMP(code, k, jt, jf);
}

constexpr uint32_t kNrOffset = offsetof(seccomp_data, nr);
constexpr uint32_t kArchOffset = offsetof(seccomp_data, arch);
constexpr uint32_t kIpLowOffset = offsetof(seccomp_data, instruction_pointer);
constexpr uint32_t kIpHighOffset = kIpLowOffset + 4;
// args[3] (mmap flags), low 32 bits on little-endian x86-64.
constexpr uint32_t kArg3Offset = offsetof(seccomp_data, args) + 3 * sizeof(uint64_t);

// Lets every syscall made from [start, end) through (a range within one 4 GiB block).
void allow_calls_from(std::vector<sock_filter>* f, uint64_t start, uint64_t end) {
  RELIVE_CHECK(start >> 32 == (end - 1) >> 32, "an allowed range straddles 4 GiB");
  f->push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kIpHighOffset));
  f->push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(start >> 32), 0, 4));
  f->push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kIpLowOffset));
  f->push_back(jump(BPF_JMP | BPF_JGE | BPF_K, static_cast<uint32_t>(start), 0, 2));
  f->push_back(jump(BPF_JMP | BPF_JGE | BPF_K, static_cast<uint32_t>(end), 1, 0));
  f->push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
}

}  // namespace

std::vector<sock_filter> build_seccomp_filter() {
  std::vector<sock_filter> f;
  // Anything not native x86-64 (i386 int 0x80, x32) stops, and the tracer rejects it.
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArchOffset));
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_TRACE));
  // The fast trampolines' calls go through untraced: they log themselves (syscall_buffer.h).
  allow_calls_from(&f, kTrampolineAddr + kFastTrampolineOffset,
                   kTrampolineAddr + kFastTrampolineEnd);
  // So do the fast path's (fast_path_blob.h), for the calls of patched sites.
  allow_calls_from(&f, kFastPathBlobAddr, kFastPathBlobAddr + kFastPathBlobSize);
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kNrOffset));
  for (int nr = 0; nr <= kMaxSyscall; ++nr) {
    if (base_policy(nr) != Policy::kAllow) continue;
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
    f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_rseq, 0, 1));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
  // mmap: anonymous mappings are deterministic and frequent; file mappings stop.
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3));
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArg3Offset));
  f.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, MAP_ANONYMOUS, 0, 1));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_TRACE));
  return f;
}

int install_seccomp_filter(const std::vector<sock_filter>& program) {
  sock_fprog prog{static_cast<unsigned short>(program.size()),
                  const_cast<sock_filter*>(program.data())};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return static_cast<int>(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog));
}

}  // namespace relive::tracee
