#include "tracee/syscall_policy.h"

#include <fmt/format.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>

namespace relive::tracee {
namespace {

using P = Policy;

Decision unsupported(std::string why) { return {P::kUnsupported, std::move(why)}; }

Decision decide_mmap(const SyscallArgs& a) {
  uint64_t flags = a[3];
  if (flags & MAP_ANONYMOUS) return {P::kAllow, {}};
  // A shared writable mapping is recorded like any file mapping (the processes of a recording
  // run one at a time, so their writes through it are deterministic); the capture refuses one
  // that a process outside the recording also holds.
  return {P::kMmapFile, {}};
}

Decision decide_clone(uint64_t flags) {
  const uint64_t kThread = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
  const uint64_t kNamespaces = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
                               CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWCGROUP;
  if ((flags & kThread) == kThread) return {P::kClone, {}};
  if (flags & kNamespaces) return unsupported("clone into new namespaces");
  if ((flags & CLONE_VM) && !(flags & CLONE_VFORK))
    return unsupported("clone sharing memory without being a thread");
  return {P::kFork, {}};
}

Decision decide_futex(const SyscallArgs& a) {
  int op = static_cast<int>(a[1]) & FUTEX_CMD_MASK;
  switch (op) {
    case FUTEX_WAIT:
    case FUTEX_WAKE:
    case FUTEX_WAIT_BITSET:
    case FUTEX_WAKE_BITSET:
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
    case FUTEX_WAKE_OP:
    case FUTEX_LOCK_PI:
    case FUTEX_UNLOCK_PI:
    case FUTEX_TRYLOCK_PI:
    case FUTEX_LOCK_PI2:
      return {P::kEmulate, {}};
    default:
      return unsupported("futex operation " + std::to_string(op));
  }
}

}  // namespace

bool kernel_places(int nr, const SyscallArgs& a) {
  if (nr == SYS_mmap)
    return (a[3] & MAP_ANONYMOUS) != 0 && (a[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE)) == 0;
  if (nr == SYS_mremap) return (a[3] & MREMAP_MAYMOVE) != 0 && (a[3] & MREMAP_FIXED) == 0;
  return false;
}

bool pin_placement(int nr, uint64_t recorded, Regs* r) {
  if (nr == SYS_mmap) {
    r->rdi = recorded;
    r->r10 |= MAP_FIXED_NOREPLACE;
    return true;
  }
  if (nr == SYS_mremap && recorded != r->rdi) {
    r->r10 |= MREMAP_FIXED;
    r->r8 = recorded;
    return true;
  }
  return false;
}

Decision decide(int nr, const SyscallArgs& args, uint64_t clone3_flags) {
  const SyscallSpec& spec = syscall_spec(nr);
  switch (nr) {
    case SYS_mmap:
      return decide_mmap(args);
    case SYS_clone:
      return decide_clone(args[0]);
    case SYS_clone3:
      return decide_clone(clone3_flags);
    case SYS_futex:
      return decide_futex(args);
    default:
      break;
  }
  if (spec.policy != P::kUnsupported) return {spec.policy, {}};
  if (spec.why != nullptr) return unsupported(spec.why);
  return unsupported(fmt::format("system call {} is not supported", nr));
}

}  // namespace relive::tracee
