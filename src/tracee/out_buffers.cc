#include "tracee/out_buffers.h"

#include <fmt/format.h>
#include <linux/futex.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <termios.h>

#include <algorithm>
#include <csignal>
#include <ctime>

namespace relive::tracee {
namespace {

constexpr uint64_t kStatxSize = 256;
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

Result<std::vector<MemRange>> ranges(const Task& t, int nr, const SyscallArgs& a, int64_t r) {
  std::vector<MemRange> out;
  uint64_t ur = static_cast<uint64_t>(r);
  switch (nr) {
    case SYS_read:
    case SYS_pread64:
    case SYS_getdents:
    case SYS_getdents64:
    case SYS_readlink:
    case SYS_listxattr:
    case SYS_llistxattr:
    case SYS_flistxattr:
      add(out, a[1], ur);
      break;
    case SYS_getcwd:
    case SYS_getrandom:
      add(out, a[0], ur);
      break;
    case SYS_getxattr:
    case SYS_lgetxattr:
    case SYS_fgetxattr:
    case SYS_readlinkat:
      add(out, a[2], ur);
      break;
    case SYS_readv:
    case SYS_preadv:
    case SYS_preadv2:
      RELIVE_RETURN_IF_ERROR(add_iov(t, out, a[1], a[2], ur));
      break;
    case SYS_recvfrom:
      add(out, a[1], ur);
      RELIVE_RETURN_IF_ERROR(add_sockaddr(t, out, a[4], a[5]));
      break;
    case SYS_recvmsg:
      RELIVE_RETURN_IF_ERROR(add_msghdr(t, out, a[1], ur));
      break;
    case SYS_recvmmsg:
      RELIVE_RETURN_IF_ERROR(add_mmsghdrs(t, out, a[1], r));
      break;
    case SYS_accept:
    case SYS_accept4:
    case SYS_getsockname:
    case SYS_getpeername:
      RELIVE_RETURN_IF_ERROR(add_sockaddr(t, out, a[1], a[2]));
      break;
    case SYS_getsockopt:
      RELIVE_RETURN_IF_ERROR(add_sockaddr(t, out, a[3], a[4], 4096));
      break;
    case SYS_stat:
    case SYS_fstat:
    case SYS_lstat:
      add(out, a[1], sizeof(struct stat));
      break;
    case SYS_newfstatat:
      add(out, a[2], sizeof(struct stat));
      break;
    case SYS_statx:
      add(out, a[4], kStatxSize);
      break;
    case SYS_statfs:
    case SYS_fstatfs:
      add(out, a[1], sizeof(struct statfs));
      break;
    case SYS_uname:
      add(out, a[0], sizeof(utsname));
      break;
    case SYS_sysinfo:
      add(out, a[0], sizeof(struct sysinfo));
      break;
    case SYS_times:
      add(out, a[0], sizeof(tms));
      break;
    case SYS_time:
      add(out, a[0], sizeof(time_t));
      break;
    case SYS_gettimeofday:
      add(out, a[0], sizeof(timeval));
      add(out, a[1], 8);
      break;
    case SYS_clock_gettime:
    case SYS_clock_getres:
      add(out, a[1], sizeof(timespec));
      break;
    case SYS_nanosleep:
      add(out, a[1], sizeof(timespec));
      break;
    case SYS_clock_nanosleep:
      add(out, a[3], sizeof(timespec));
      break;
    case SYS_getrlimit:
      add(out, a[1], sizeof(rlimit));
      break;
    case SYS_prlimit64:
      add(out, a[3], sizeof(rlimit));
      break;
    case SYS_getrusage:
      add(out, a[1], sizeof(rusage));
      break;
    case SYS_wait4:
      add(out, a[1], sizeof(int));
      add(out, a[3], sizeof(rusage));
      break;
    case SYS_waitid:
      add(out, a[2], sizeof(siginfo_t));
      add(out, a[4], sizeof(rusage));
      break;
    case SYS_pipe:
    case SYS_pipe2:
    case SYS_socketpair:
      add(out, nr == SYS_socketpair ? a[3] : a[0], 2 * sizeof(int));
      break;
    case SYS_poll:
    case SYS_ppoll:
      add(out, a[0], a[1] * sizeof(pollfd));
      break;
    case SYS_select:
    case SYS_pselect6:
      for (int i = 1; i <= 3; ++i) add(out, a[i], fd_set_bytes(a[0]));
      if (nr == SYS_select) add(out, a[4], sizeof(timeval));
      break;
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
    case SYS_epoll_pwait2:
      add(out, a[1], ur * sizeof(epoll_event));
      break;
    case SYS_getgroups:
      add(out, a[1], ur * sizeof(gid_t));
      break;
    case SYS_getresuid:
    case SYS_getresgid:
      for (int i = 0; i < 3; ++i) add(out, a[i], sizeof(uid_t));
      break;
    case SYS_sched_getaffinity:
      add(out, a[2], ur);
      break;
    case SYS_sched_getparam:
      add(out, a[1], sizeof(int));
      break;
    case SYS_sched_rr_get_interval:
      add(out, a[1], sizeof(timespec));
      break;
    case SYS_getcpu:
      add(out, a[0], 4);
      add(out, a[1], 4);
      break;
    case SYS_capget:
      add(out, a[1], 3 * 4 * 2);
      break;
    case SYS_rt_sigpending:
      add(out, a[0], a[1]);
      break;
    case SYS_rt_sigtimedwait:
      add(out, a[1], sizeof(siginfo_t));
      break;
    case SYS_getitimer:
      add(out, a[1], sizeof(itimerval));
      break;
    case SYS_setitimer:
      add(out, a[2], sizeof(itimerval));
      break;
    case SYS_timer_create:
      add(out, a[2], sizeof(int));
      break;
    case SYS_timer_settime:
      add(out, a[3], sizeof(itimerspec));
      break;
    case SYS_timer_gettime:
      add(out, a[1], sizeof(itimerspec));
      break;
    case SYS_timerfd_settime:
      add(out, a[3], sizeof(itimerspec));
      break;
    case SYS_timerfd_gettime:
      add(out, a[1], sizeof(itimerspec));
      break;
    case SYS_mincore:
      add(out, a[2], (a[1] + 4095) / 4096);
      break;
    case SYS_get_robust_list:
      add(out, a[1], 8);
      add(out, a[2], 8);
      break;
    case SYS_get_mempolicy:
      add(out, a[0], sizeof(int));
      add(out, a[1], (a[2] + 7) / 8);
      break;
    case SYS_prctl:
      if (a[0] == 16 /*PR_GET_NAME*/) add(out, a[1], 16);
      if (a[0] == 2 /*PR_GET_PDEATHSIG*/ || a[0] == 26 /*PR_GET_TSC*/) add(out, a[1], 4);
      break;
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
    case SYS_clone:
    case SYS_clone3:
      break;  // handled by the recorder (tid fix-ups)
    case SYS_splice:
    case SYS_copy_file_range:
      add(out, a[1], 8);
      add(out, a[3], 8);
      break;  // in/out offsets
    case SYS_sendfile:
      add(out, a[2], 8);
      break;
    default:
      break;
  }
  return out;
}

}  // namespace

Result<std::vector<MemRange>> out_ranges(const Task& task, int nr, const SyscallArgs& args,
                                         int64_t result) {
  // A failed call wrote nothing the program may rely on (rt_sigtimedwait/-EAGAIN included).
  if (result < 0 && result > -4096) {
    if (nr == SYS_nanosleep || nr == SYS_clock_nanosleep || nr == SYS_select)
      return ranges(task, nr, args, 0);  // remaining time is written on EINTR
    return std::vector<MemRange>{};
  }
  return ranges(task, nr, args, result);
}

Result<std::string> written_bytes(const Task& task, int nr, const SyscallArgs& args,
                                  int64_t result) {
  if (result <= 0) return std::string();
  uint64_t total = static_cast<uint64_t>(result);
  if (nr == SYS_write) return task.read_mem(args[1], total);
  // writev: gather the iovecs up to the number of bytes written.
  if (args[2] > 1024) return Status::InvalidArgument("writev with too many iovecs");
  std::vector<iovec> iov(args[2]);
  RELIVE_RETURN_IF_ERROR(task.read_mem(args[1], iov.data(), iov.size() * sizeof(iovec)));
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
