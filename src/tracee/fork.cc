#include "tracee/fork.h"

#include <linux/sched.h>
#include <sys/syscall.h>

namespace relive::tracee {
namespace {

constexpr uint64_t kVforkBits = CLONE_VM | CLONE_VFORK;

}  // namespace

Status convert_vfork_to_fork(const Task& task, Regs* r) {
  switch (static_cast<int>(r->orig_rax)) {
    case SYS_vfork:
      r->orig_rax = SYS_fork;
      return Status::Ok();
    case SYS_clone:
      r->rdi &= ~kVforkBits;
      return Status::Ok();
    case SYS_clone3: {
      uint64_t flags = 0;
      RELIVE_RETURN_IF_ERROR(task.read_mem(r->rdi, &flags, sizeof flags));
      flags &= ~kVforkBits;
      return task.write_mem(r->rdi, &flags, sizeof flags);
    }
    default:
      return Status::Ok();
  }
}

Result<uint64_t> child_settid_address(const Task& task, int nr, const std::array<uint64_t, 6>& a) {
  if (nr == SYS_clone) return (a[0] & CLONE_CHILD_SETTID) ? a[3] : 0;
  if (nr != SYS_clone3) return uint64_t{0};
  uint64_t cl[3] = {};  // flags, pidfd, child_tid
  RELIVE_RETURN_IF_ERROR(task.read_mem(a[0], cl, sizeof cl));
  return (cl[0] & CLONE_CHILD_SETTID) ? cl[2] : 0;
}

}  // namespace relive::tracee
