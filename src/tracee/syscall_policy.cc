#include "tracee/syscall_policy.h"

#include <linux/futex.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <termios.h>

#include <array>

#include "common/check.h"

namespace relive::tracee {
namespace {

using P = Policy;

struct Entry {
  int nr;
  Policy policy;
};

// Deterministic, process-local calls: memory management, signal masks and handlers, TLS.
constexpr Entry kAllowed[] = {
    {SYS_munmap, P::kAllow},       {SYS_mprotect, P::kAllow},
    {SYS_brk, P::kAllow},          {SYS_madvise, P::kAllow},
    {SYS_mremap, P::kAllow},       {SYS_mlock, P::kAllow},
    {SYS_munlock, P::kAllow},      {SYS_mlockall, P::kAllow},
    {SYS_munlockall, P::kAllow},   {SYS_msync, P::kAllow},
    {SYS_rt_sigaction, P::kAllow}, {SYS_rt_sigprocmask, P::kAllow},
    {SYS_rt_sigreturn, P::kAllow}, {SYS_sigaltstack, P::kAllow},
    {SYS_arch_prctl, P::kAllow},   {SYS_set_robust_list, P::kAllow},
    {SYS_sched_yield, P::kAllow},  {SYS_pkey_mprotect, P::kAllow},
    {SYS_pkey_alloc, P::kAllow},   {SYS_pkey_free, P::kAllow},
    {SYS_mlock2, P::kAllow},
};

// Calls whose results come from outside the process (or name kernel objects by number).
constexpr int kEmulated[] = {
    SYS_read,
    SYS_write,
    SYS_open,
    SYS_close,
    SYS_stat,
    SYS_fstat,
    SYS_lstat,
    SYS_poll,
    SYS_lseek,
    SYS_ioctl,
    SYS_pread64,
    SYS_pwrite64,
    SYS_readv,
    SYS_writev,
    SYS_access,
    SYS_pipe,
    SYS_select,
    SYS_mincore,
    SYS_dup,
    SYS_dup2,
    SYS_pause,
    SYS_nanosleep,
    SYS_getitimer,
    SYS_alarm,
    SYS_setitimer,
    SYS_getpid,
    SYS_sendfile,
    SYS_socket,
    SYS_connect,
    SYS_accept,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_shutdown,
    SYS_bind,
    SYS_listen,
    SYS_getsockname,
    SYS_getpeername,
    SYS_socketpair,
    SYS_setsockopt,
    SYS_getsockopt,
    SYS_wait4,
    SYS_kill,
    SYS_uname,
    SYS_fcntl,
    SYS_flock,
    SYS_fsync,
    SYS_fdatasync,
    SYS_truncate,
    SYS_ftruncate,
    SYS_getdents,
    SYS_getcwd,
    SYS_chdir,
    SYS_fchdir,
    SYS_rename,
    SYS_mkdir,
    SYS_rmdir,
    SYS_creat,
    SYS_link,
    SYS_unlink,
    SYS_symlink,
    SYS_readlink,
    SYS_chmod,
    SYS_fchmod,
    SYS_chown,
    SYS_fchown,
    SYS_lchown,
    SYS_umask,
    SYS_gettimeofday,
    SYS_getrlimit,
    SYS_getrusage,
    SYS_sysinfo,
    SYS_times,
    SYS_getuid,
    SYS_syslog,
    SYS_getgid,
    SYS_setuid,
    SYS_setgid,
    SYS_geteuid,
    SYS_getegid,
    SYS_setpgid,
    SYS_getppid,
    SYS_getpgrp,
    SYS_setsid,
    SYS_setreuid,
    SYS_setregid,
    SYS_getgroups,
    SYS_setgroups,
    SYS_setresuid,
    SYS_getresuid,
    SYS_setresgid,
    SYS_getresgid,
    SYS_getpgid,
    SYS_setfsuid,
    SYS_setfsgid,
    SYS_getsid,
    SYS_capget,
    SYS_capset,
    SYS_rt_sigpending,
    SYS_rt_sigtimedwait,
    SYS_rt_sigqueueinfo,
    SYS_utime,
    SYS_mknod,
    SYS_personality,
    SYS_statfs,
    SYS_fstatfs,
    SYS_getpriority,
    SYS_setpriority,
    SYS_sched_setparam,
    SYS_sched_getparam,
    SYS_sched_setscheduler,
    SYS_sched_getscheduler,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_rr_get_interval,
    SYS_prctl,
    SYS_setrlimit,
    SYS_chroot,
    SYS_sync,
    SYS_gettid,
    SYS_readahead,
    SYS_setxattr,
    SYS_lsetxattr,
    SYS_fsetxattr,
    SYS_getxattr,
    SYS_lgetxattr,
    SYS_fgetxattr,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_flistxattr,
    SYS_removexattr,
    SYS_lremovexattr,
    SYS_fremovexattr,
    SYS_tkill,
    SYS_time,
    SYS_futex,
    SYS_sched_setaffinity,
    SYS_sched_getaffinity,
    SYS_epoll_create,
    SYS_getdents64,
    SYS_fadvise64,
    SYS_timer_create,
    SYS_timer_settime,
    SYS_timer_gettime,
    SYS_timer_getoverrun,
    SYS_timer_delete,
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_clock_nanosleep,
    SYS_epoll_wait,
    SYS_epoll_ctl,
    SYS_tgkill,
    SYS_utimes,
    SYS_waitid,
    SYS_inotify_init,
    SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    SYS_openat,
    SYS_mkdirat,
    SYS_mknodat,
    SYS_fchownat,
    SYS_futimesat,
    SYS_newfstatat,
    SYS_unlinkat,
    SYS_renameat,
    SYS_linkat,
    SYS_symlinkat,
    SYS_readlinkat,
    SYS_fchmodat,
    SYS_faccessat,
    SYS_pselect6,
    SYS_ppoll,
    SYS_splice,
    SYS_tee,
    SYS_sync_file_range,
    SYS_utimensat,
    SYS_epoll_pwait,
    SYS_signalfd,
    SYS_timerfd_create,
    SYS_eventfd,
    SYS_fallocate,
    SYS_timerfd_settime,
    SYS_timerfd_gettime,
    SYS_accept4,
    SYS_signalfd4,
    SYS_eventfd2,
    SYS_epoll_create1,
    SYS_dup3,
    SYS_pipe2,
    SYS_inotify_init1,
    SYS_preadv,
    SYS_pwritev,
    SYS_rt_tgsigqueueinfo,
    SYS_recvmmsg,
    SYS_prlimit64,
    SYS_syncfs,
    SYS_sendmmsg,
    SYS_getcpu,
    SYS_renameat2,
    SYS_getrandom,
    SYS_memfd_create,
    SYS_copy_file_range,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_statx,
    SYS_close_range,
    SYS_openat2,
    SYS_faccessat2,
    SYS_epoll_pwait2,
    SYS_get_robust_list,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_get_mempolicy,
    SYS_set_mempolicy,
    SYS_mbind,
    SYS_getpgid,
    SYS_pidfd_open,
    SYS_restart_syscall,
};

// Calls that reach the kernel state the process depends on but that we cannot replay.
constexpr Entry kSpecial[] = {
    {SYS_mmap, P::kMmapFile},  // anonymous mappings never reach the tracer (filter allows them)
    {SYS_clone, P::kClone},
    {SYS_clone3, P::kClone},
    {SYS_exit, P::kExit},
    {SYS_exit_group, P::kExitGroup},
    {SYS_rseq, P::kDenyNosys},
    {SYS_set_tid_address, P::kNative},  // sets clear_child_tid; returns the (remapped) tid
};

struct Table {
  std::array<Policy, kMaxSyscall + 1> policy{};
  Table() {
    for (int nr : kEmulated) policy[nr] = P::kEmulate;
    for (const Entry& e : kAllowed) policy[e.nr] = e.policy;
    for (const Entry& e : kSpecial) policy[e.nr] = e.policy;
  }
};

const Table& table() {
  static const Table t;
  return t;
}

Decision unsupported(std::string why) { return {P::kUnsupported, std::move(why)}; }

Decision decide_mmap(const SyscallArgs& a) {
  uint64_t prot = a[2], flags = a[3];
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

Policy base_policy(int nr) {
  if (nr < 0 || nr > kMaxSyscall) return P::kUnsupported;
  return table().policy[nr];
}

Decision decide(int nr, const SyscallArgs& args, uint64_t clone3_flags) {
  Policy p = base_policy(nr);
  switch (nr) {
    case SYS_mmap:
      return decide_mmap(args);
    case SYS_clone:
      return decide_clone(args[0]);
    case SYS_clone3:
      return decide_clone(clone3_flags);
    case SYS_futex:
      return decide_futex(args);
    case SYS_fork:
    case SYS_vfork:
      return {P::kFork, {}};
    case SYS_execve:
      return {P::kExec, {}};
    case SYS_execveat:
      return unsupported("execveat (execve by descriptor); use execve");
    case SYS_io_uring_setup:
    case SYS_io_uring_enter:
    case SYS_io_uring_register:
      return unsupported("io_uring (the kernel completes requests behind the tracer's back)");
    case SYS_shmget:
    case SYS_shmat:
      return unsupported("System V shared memory (an outside writer is possible)");
    default:
      break;
  }
  if (p == P::kUnsupported) return unsupported("system call " + std::to_string(nr));
  return {p, {}};
}

bool is_output_write(int nr) { return nr == SYS_write || nr == SYS_writev; }

bool changes_fd_table(int nr) {
  switch (nr) {
    case SYS_close:
    case SYS_dup:
    case SYS_dup2:
    case SYS_dup3:
    case SYS_fcntl:
    case SYS_open:
    case SYS_openat:
    case SYS_openat2:
    case SYS_creat:
    case SYS_socket:
    case SYS_accept:
    case SYS_accept4:
    case SYS_pipe:
    case SYS_pipe2:
    case SYS_socketpair:
    case SYS_close_range:
    case SYS_epoll_create:
    case SYS_epoll_create1:
    case SYS_eventfd:
    case SYS_eventfd2:
    case SYS_memfd_create:
    case SYS_timerfd_create:
    case SYS_signalfd:
    case SYS_signalfd4:
    case SYS_inotify_init:
    case SYS_inotify_init1:
    case SYS_pidfd_open:
    case SYS_recvmsg:  // SCM_RIGHTS can install descriptors
      return true;
    default:
      return false;
  }
}

}  // namespace relive::tracee
