#include "tracee/out_buffers.h"

#include <fmt/format.h>
#include <linux/futex.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>

#include <algorithm>

#include "common/check.h"

namespace relive::tracee {
namespace {

constexpr uint64_t kMaxIov = 1024;

void add(std::vector<MemRange>& out, uint64_t addr, uint64_t len) {
  if (addr != 0 && len != 0) out.push_back({addr, len});
}

// The first `total` bytes spread over an iovec array in the tracee.
Status add_iov(const Task& t, std::vector<MemRange>& out, uint64_t iov_addr, uint64_t iovcnt,
               uint64_t total) {
  if (iovcnt > kMaxIov) return Status::InvalidArgument("iovec count too large");
  std::vector<iovec> iov(iovcnt);
  RELIVE_RETURN_IF_ERROR(t.read_mem(iov_addr, iov.data(), iovcnt * sizeof(iovec)));
  for (const iovec& v : iov) {
    if (total == 0) break;
    uint64_t n = std::min<uint64_t>(total, v.iov_len);
    add(out, reinterpret_cast<uint64_t>(v.iov_base), n);
    total -= n;
  }
  return Status::Ok();
}

// A (sockaddr*, socklen_t*) pair: the kernel wrote *len and up to *len bytes of the address.
Status add_sockaddr(const Task& t, std::vector<MemRange>& out, uint64_t addr, uint64_t len_addr,
                    uint64_t max_len_hint = 128) {
  if (len_addr == 0) return Status::Ok();
  uint32_t len = 0;
  RELIVE_RETURN_IF_ERROR(t.read_mem(len_addr, &len, sizeof len));
  add(out, len_addr, sizeof len);
  add(out, addr, std::min<uint64_t>(len, max_len_hint));
  return Status::Ok();
}

Status add_msghdr(const Task& t, std::vector<MemRange>& out, uint64_t msg_addr, uint64_t total) {
  msghdr m{};
  RELIVE_RETURN_IF_ERROR(t.read_mem(msg_addr, &m, sizeof m));
  add(out, msg_addr, sizeof m);  // msg_namelen, msg_controllen and msg_flags are outputs
  add(out, reinterpret_cast<uint64_t>(m.msg_name), m.msg_namelen);
  add(out, reinterpret_cast<uint64_t>(m.msg_control), m.msg_controllen);
  return add_iov(t, out, reinterpret_cast<uint64_t>(m.msg_iov), m.msg_iovlen, total);
}

Status add_mmsghdrs(const Task& t, std::vector<MemRange>& out, uint64_t vec, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    uint64_t addr = vec + static_cast<uint64_t>(i) * sizeof(mmsghdr);
    mmsghdr h{};
    RELIVE_RETURN_IF_ERROR(t.read_mem(addr, &h, sizeof h));
    add(out, addr + offsetof(mmsghdr, msg_len), sizeof h.msg_len);
    RELIVE_RETURN_IF_ERROR(add_msghdr(t, out, addr, h.msg_len));
  }
  return Status::Ok();
}

uint64_t fd_set_bytes(uint64_t nfds) { return ((nfds + 63) / 64) * 8; }

Result<std::vector<MemRange>> ioctl_ranges(const SyscallArgs& a) {
  std::vector<MemRange> out;
  uint64_t req = a[1] & 0xffffffff, arg = a[2];
  switch (req) {
    case TCGETS:
      add(out, arg, sizeof(termios));
      return out;
    case TIOCGWINSZ:
      add(out, arg, sizeof(winsize));
      return out;
    case TIOCGPGRP:
    case TIOCGSID:
    case FIONREAD:
    case TIOCOUTQ:
    case TIOCGPTN:
      add(out, arg, sizeof(int));
      return out;
    case TCSETS:
    case TCSETSW:
    case TCSETSF:
    case TIOCSWINSZ:
    case TIOCSPGRP:
    case FIONBIO:
    case FIOCLEX:
    case FIONCLEX:
    case FIOASYNC:
    case TIOCSCTTY:
    case TIOCNOTTY:
    case TCFLSH:
    case TCXONC:
    case TCSBRK:
      return out;
    default:
      break;
  }
  // New-style requests encode direction and size; _IOC_READ means the kernel writes `size`.
  uint64_t dir = (req >> 30) & 3, size = (req >> 16) & 0x3fff;
  if (dir == 0 && size == 0 && (req >> 8 & 0xff) != 0x54)
    return Status::Unsupported(fmt::format("ioctl request {:#x} (output size unknown)", req));
  if (dir & 2) add(out, arg, size);  // _IOC_READ
  return out;
}

// The calls whose out-buffers depend on an operation argument (OutRule::kByArguments).
Result<std::vector<MemRange>> ranges_by_arguments(int nr, const SyscallArgs& a) {
  std::vector<MemRange> out;
  switch (nr) {
    case SYS_ioctl:
      return ioctl_ranges(a);
    case SYS_futex: {
      int op = static_cast<int>(a[1]) & FUTEX_CMD_MASK;
      if (op == FUTEX_WAKE_OP) add(out, a[4], 4);
      if (op == FUTEX_LOCK_PI || op == FUTEX_UNLOCK_PI || op == FUTEX_TRYLOCK_PI ||
          op == FUTEX_LOCK_PI2)
        add(out, a[0], 4);
      break;
    }
    case SYS_prctl:
      if (a[0] == PR_GET_NAME) add(out, a[1], 16);
      if (a[0] == PR_GET_PDEATHSIG || a[0] == PR_GET_TSC) add(out, a[1], 4);
      break;
    case SYS_mincore:
      add(out, a[2], (a[1] + 4095) / 4096);
      break;
    case SYS_get_mempolicy:
      add(out, a[0], sizeof(int));
      add(out, a[1], (a[2] + 7) / 8);
      break;
    default:
      RELIVE_CHECK(false, "the syscall table names {} by_arguments() but no rule exists", nr);
  }
  return out;
}

Status add_rule(const Task& t, std::vector<MemRange>& out, const OutRule& rule,
                const SyscallArgs& a, uint64_t result) {
  uint64_t addr = a[rule.arg];
  switch (rule.kind) {
    case OutRule::kNone:
    case OutRule::kByArguments:
      break;
    case OutRule::kResult:
      add(out, addr, result);
      break;
    case OutRule::kFixed:
      add(out, addr, rule.size);
      break;
    case OutRule::kResultTimes:
      add(out, addr, result * rule.size);
      break;
    case OutRule::kArgTimes:
      add(out, addr, a[rule.count] * rule.size);
      break;
    case OutRule::kIov:
      return add_iov(t, out, addr, a[rule.count], result);
    case OutRule::kSockaddr:
      return add_sockaddr(t, out, addr, a[rule.count], rule.size);
    case OutRule::kMsghdr:
      return add_msghdr(t, out, addr, result);
    case OutRule::kMmsghdrs:
      return add_mmsghdrs(t, out, addr, static_cast<int64_t>(result));
    case OutRule::kFdSets:
      for (int i = 1; i <= 3; ++i) add(out, a[i], fd_set_bytes(a[0]));
      break;
  }
  return Status::Ok();
}

Result<std::vector<MemRange>> ranges(const Task& t, int nr, const SyscallArgs& a, int64_t r) {
  const SyscallSpec& spec = syscall_spec(nr);
  if (spec.out[0].kind == OutRule::kByArguments) return ranges_by_arguments(nr, a);
  std::vector<MemRange> out;
  for (const OutRule& rule : spec.out)
    RELIVE_RETURN_IF_ERROR(add_rule(t, out, rule, a, static_cast<uint64_t>(r)));
  return out;
}

}  // namespace

Result<std::vector<MemRange>> out_ranges(const Task& task, int nr, const SyscallArgs& args,
                                         int64_t result) {
  // A failed call wrote nothing the program may rely on (rt_sigtimedwait/-EAGAIN included).
  if (result < 0 && result > -4096) {
    if (syscall_spec(nr).flags & kWritesOnEintr)
      return ranges(task, nr, args, 0);  // remaining time is written on EINTR
    return std::vector<MemRange>{};
  }
  return ranges(task, nr, args, result);
}

Result<std::string> written_bytes(const Task& task, int nr, const SyscallArgs& args,
                                  int64_t result) {
  if (result <= 0) return std::string();
  uint64_t total = static_cast<uint64_t>(result);
  if (nr == SYS_write || nr == SYS_pwrite64 || nr == SYS_sendto)
    return task.read_mem(args[1], total);
  // writev and sendmsg: gather the iovecs up to the number of bytes written.
  uint64_t iov_addr = args[1], iovcnt = args[2];
  if (nr == SYS_sendmsg) {
    msghdr m{};
    RELIVE_RETURN_IF_ERROR(task.read_mem(args[1], &m, sizeof m));
    iov_addr = reinterpret_cast<uint64_t>(m.msg_iov), iovcnt = m.msg_iovlen;
  }
  if (iovcnt > kMaxIov) return Status::InvalidArgument("an output write with too many iovecs");
  std::vector<iovec> iov(iovcnt);
  RELIVE_RETURN_IF_ERROR(task.read_mem(iov_addr, iov.data(), iov.size() * sizeof(iovec)));
  std::string out;
  for (const iovec& v : iov) {
    if (total == 0) break;
    uint64_t n = std::min<uint64_t>(total, v.iov_len);
    RELIVE_ASSIGN_OR_RETURN(std::string part,
                            task.read_mem(reinterpret_cast<uint64_t>(v.iov_base), n));
    out += part;
    total -= n;
  }
  return out;
}

}  // namespace relive::tracee
