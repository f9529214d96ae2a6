// The out-buffer rules of the syscall table, turned into ranges against this process's own
// memory (Task reads it with process_vm_readv, as it reads a tracee's).
#include "tracee/out_buffers.h"

#include <gtest/gtest.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <vector>

namespace relive::tracee {
namespace {

uint64_t addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

std::vector<std::pair<uint64_t, uint64_t>> ranges(int nr, SyscallArgs a, int64_t result) {
  Result<std::vector<MemRange>> r = out_ranges(Task(::getpid()), nr, a, result);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  std::vector<std::pair<uint64_t, uint64_t>> out;
  if (r.ok())
    for (const MemRange& m : *r) out.emplace_back(m.addr, m.len);
  return out;
}

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

TEST(OutBuffers, AReadWritesAsManyBytesAsItReturned) {
  char buf[64];
  EXPECT_EQ(ranges(SYS_read, {3, addr(buf), sizeof buf}, 10), (Ranges{{addr(buf), 10}}));
  EXPECT_EQ(ranges(SYS_read, {3, addr(buf), sizeof buf}, 0), Ranges{});
  EXPECT_EQ(ranges(SYS_getrandom, {addr(buf), 16, 0}, 16), (Ranges{{addr(buf), 16}}));
}

TEST(OutBuffers, AFailedCallWroteNothingButASleepCutShortWroteTheTimeLeft) {
  char buf[64];
  timespec left{};
  EXPECT_EQ(ranges(SYS_read, {3, addr(buf), sizeof buf}, -EAGAIN), Ranges{});
  EXPECT_EQ(ranges(SYS_nanosleep, {0, addr(&left)}, -EINTR), (Ranges{{addr(&left), sizeof left}}));
  EXPECT_EQ(ranges(SYS_clock_nanosleep, {0, 0, 0, addr(&left)}, -EINTR),
            (Ranges{{addr(&left), sizeof left}}));
}

TEST(OutBuffers, VectoredReadsFillTheirIovecsInOrder) {
  char a[4], b[8], c[8];
  iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {c, sizeof c}};
  EXPECT_EQ(ranges(SYS_readv, {3, addr(iov), 3}, 7), (Ranges{{addr(a), 4}, {addr(b), 3}}));
  EXPECT_EQ(ranges(SYS_preadv2, {3, addr(iov), 3, 0, 0, 0}, 20),
            (Ranges{{addr(a), 4}, {addr(b), 8}, {addr(c), 8}}));
}

TEST(OutBuffers, SocketCallsWriteTheirAddressAndItsLength) {
  char buf[32];
  sockaddr_storage from{};
  socklen_t len = 16;
  EXPECT_EQ(ranges(SYS_recvfrom, {3, addr(buf), sizeof buf, 0, addr(&from), addr(&len)}, 5),
            (Ranges{{addr(buf), 5}, {addr(&len), sizeof len}, {addr(&from), 16}}));
  EXPECT_EQ(ranges(SYS_accept4, {3, addr(&from), addr(&len), 0}, 4),
            (Ranges{{addr(&len), sizeof len}, {addr(&from), 16}}));

  char data[16], control[32];
  iovec iov{data, sizeof data};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  EXPECT_EQ(ranges(SYS_recvmsg, {3, addr(&m), 0}, 6),
            (Ranges{{addr(&m), sizeof m}, {addr(control), sizeof control}, {addr(data), 6}}));
}

TEST(OutBuffers, ArraysSizedByAnArgumentOrByTheResult) {
  pollfd fds[3];
  epoll_event events[8];
  EXPECT_EQ(ranges(SYS_poll, {addr(fds), 3, 0}, 1), (Ranges{{addr(fds), 3 * sizeof(pollfd)}}));
  EXPECT_EQ(ranges(SYS_epoll_wait, {5, addr(events), 8, 0}, 2),
            (Ranges{{addr(events), 2 * sizeof(epoll_event)}}));
}

TEST(OutBuffers, SelectWritesItsThreeSetsAndTheTimeLeft) {
  fd_set r, w, e;
  timeval tv{};
  EXPECT_EQ(ranges(SYS_select, {70, addr(&r), addr(&w), addr(&e), addr(&tv)}, 1),
            (Ranges{{addr(&r), 16}, {addr(&w), 16}, {addr(&e), 16}, {addr(&tv), sizeof tv}}));
  EXPECT_EQ(ranges(SYS_pselect6, {3, addr(&r), 0, 0, 0, 0}, 0), (Ranges{{addr(&r), 8}}));
}

TEST(OutBuffers, SeveralFixedOutputs) {
  timeval tv{};
  char tz[8];
  EXPECT_EQ(ranges(SYS_gettimeofday, {addr(&tv), addr(tz)}, 0),
            (Ranges{{addr(&tv), sizeof tv}, {addr(tz), 8}}));
  EXPECT_EQ(ranges(SYS_gettimeofday, {addr(&tv), 0}, 0), (Ranges{{addr(&tv), sizeof tv}}));
}

TEST(OutBuffers, OperationsDecideWhatFutexPrctlAndIoctlWrite) {
  int word = 0, other = 0;
  EXPECT_EQ(ranges(SYS_futex, {addr(&word), FUTEX_WAKE, 1}, 0), Ranges{});
  EXPECT_EQ(ranges(SYS_futex, {addr(&word), FUTEX_WAKE_OP, 1, 0, addr(&other), 0}, 1),
            (Ranges{{addr(&other), 4}}));
  char name[16];
  EXPECT_EQ(ranges(SYS_prctl, {16 /*PR_GET_NAME*/, addr(name)}, 0), (Ranges{{addr(name), 16}}));
  int n = 0;
  EXPECT_EQ(ranges(SYS_ioctl, {3, FIONREAD, addr(&n)}, 0), (Ranges{{addr(&n), sizeof n}}));
  Result<std::vector<MemRange>> unknown =
      out_ranges(Task(::getpid()), SYS_ioctl, {3, 0x1234, addr(&n)}, 0);
  EXPECT_TRUE(unknown.status().is_unsupported());
}

TEST(OutBuffers, CallsWithoutOutputsWriteNothing) {
  char buf[8];
  EXPECT_EQ(ranges(SYS_write, {1, addr(buf), 8}, 8), Ranges{});
  EXPECT_EQ(ranges(SYS_close, {3}, 0), Ranges{});
}

}  // namespace
}  // namespace relive::tracee
