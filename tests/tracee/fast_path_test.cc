// fast_path.c built for the host and called directly, on a buffer in this process's memory and
// real descriptors (a regular file, pipes, /dev/null): what it does at record (which calls it
// makes itself, which it sends down the traced path, the entries it leaves) and at replay (which
// prefilled entries it answers).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/futex.h>
#include <linux/random.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "test_util.h"
#include "tracee/fast_path_abi.h"
#include "tracee/syscall_table.h"

namespace {

// A syscall buffer in the test's memory: the header and `slots` slots.
struct Buffer {
  explicit Buffer(uint64_t slots, uint64_t mode = 0)
      : bytes(sizeof(relive_fp_header) + slots * RELIVE_FP_SLOT, '\0') {
    header()->next = header()->logged = first();
    header()->room = slots;
    header()->mode = mode;
  }
  relive_fp_header* header() { return reinterpret_cast<relive_fp_header*>(bytes.data()); }
  uint64_t first() { return reinterpret_cast<uint64_t>(bytes.data()) + sizeof(relive_fp_header); }
  uint64_t used_bytes() { return header()->next - first(); }
  // The entry at `offset` bytes from the first: the call, the length word, the data.
  relive_fp_call call_at(uint64_t offset) {
    relive_fp_call c;
    std::memcpy(&c, bytes.data() + sizeof(relive_fp_header) + offset, sizeof c);
    return c;
  }
  uint64_t len_word_at(uint64_t offset) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + sizeof(relive_fp_header) + offset + RELIVE_FP_CALL_BYTES,
                sizeof w);
    return w;
  }
  std::string data_at(uint64_t offset, uint64_t len) {
    return bytes.substr(sizeof(relive_fp_header) + offset + RELIVE_FP_DATA_OFFSET, len);
  }
  // Replay: appends a prefilled entry as the replayer writes it (number and arguments negated).
  void prefill(uint64_t nr, std::vector<uint64_t> args, int64_t result, const std::string& data,
               bool continued = false) {
    uint64_t at = first() + filled_;
    unsigned char* e = reinterpret_cast<unsigned char*>(at);
    relive_fp_call c{};
    c.nr = -nr;
    for (size_t i = 0; i < 6; ++i) c.args[i] = -(i < args.size() ? args[i] : 0);
    c.result = result;
    uint64_t len = data.size() | (continued ? RELIVE_FP_CONTINUED : 0);
    std::memcpy(e, &c, sizeof c);
    std::memcpy(e + RELIVE_FP_CALL_BYTES, &len, sizeof len);
    std::memcpy(e + RELIVE_FP_DATA_OFFSET, data.data(), data.size());
    filled_ += slots(data.size()) * RELIVE_FP_SLOT;
  }
  static uint64_t slots(uint64_t len) {
    return (RELIVE_FP_DATA_OFFSET + len + RELIVE_FP_SLOT - 1) / RELIVE_FP_SLOT;
  }
  std::string bytes;
  uint64_t filled_ = 0;
};

relive_fp_frame frame(uint64_t nr, std::vector<uint64_t> args) {
  relive_fp_frame f{};
  f.nr = nr;
  for (size_t i = 0; i < args.size(); ++i) f.args[i] = args[i];
  return f;
}

uint64_t addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe2(fd, O_CLOEXEC), 0); }
  ~Pipe() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  int fd[2];
};

}  // namespace

TEST(FastPath, RecordsAReadFromARegularFileWithItsBytes) {
  relive::testing::TempDir dir;
  std::string path = dir / "f";
  std::string contents(10000, '\0');
  for (size_t i = 0; i < contents.size(); ++i) contents[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(relive::write_file_atomic(path, contents).ok());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char buf[4096];
  Buffer b(1000);
  relive_fp_frame f = frame(SYS_read, {uint64_t(fd), addr(buf), sizeof buf});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 4096);
  EXPECT_EQ(std::string(buf, 4096), contents.substr(0, 4096));
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 4096);  // the file's own position moved, as read(2)'s
  relive_fp_call c = b.call_at(0);
  EXPECT_EQ(c.nr, uint64_t(SYS_read));
  EXPECT_EQ(c.args[1], addr(buf));
  EXPECT_EQ(c.result, 4096);
  EXPECT_EQ(b.len_word_at(0), 4096u);
  EXPECT_EQ(b.data_at(0, 4096), contents.substr(0, 4096));
  EXPECT_EQ(b.used_bytes(), Buffer::slots(4096) * RELIVE_FP_SLOT);
  EXPECT_EQ(b.header()->room, 1000 - Buffer::slots(4096));

  // pread64 at an offset: the position is not moved; past the end: 0 bytes, a one-slot entry.
  relive_fp_frame p = frame(SYS_pread64, {uint64_t(fd), addr(buf), 100, 9950});
  ASSERT_EQ(relive_fast_path(&p, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(p.result, 50);
  EXPECT_EQ(std::string(buf, 50), contents.substr(9950));
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 4096);
  relive_fp_frame end = frame(SYS_pread64, {uint64_t(fd), addr(buf), 100, 20000});
  ASSERT_EQ(relive_fast_path(&end, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(end.result, 0);
  EXPECT_EQ(b.used_bytes(), (Buffer::slots(4096) + Buffer::slots(50) + 1) * RELIVE_FP_SLOT);
  ::close(fd);
}

// A regular file whose range is only partly cached reads short with RWF_NOWAIT; the program must
// still get the whole range, as read(2) gives it.
TEST(FastPath, AReadOfAPartlyCachedFileIsWhole) {
  relive::testing::TempDir dir;
  std::string path = dir / "f";
  std::string contents(64 * 4096, 'x');
  for (size_t i = 0; i < contents.size(); i += 4096) contents[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(relive::write_file_atomic(path, contents).ok());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fdatasync(fd), 0);  // clean pages can be dropped
  ASSERT_EQ(::posix_fadvise(fd, 4096, 0, POSIX_FADV_DONTNEED), 0);
  std::string buf(8 * 4096, '\0');
  Buffer b(1000);
  relive_fp_frame f = frame(SYS_read, {uint64_t(fd), addr(buf.data()), buf.size()});
  int action = relive_fast_path(&f, b.bytes.data());
  if (action == RELIVE_FP_TRACED) {
    // Not even the first page cached (dropped with the rest): nothing read, nothing logged.
    EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 0);
    EXPECT_EQ(b.used_bytes(), 0u);
  } else {
    ASSERT_EQ(action, RELIVE_FP_DONE);
    EXPECT_EQ(f.result, static_cast<int64_t>(buf.size()));
    EXPECT_EQ(buf, contents.substr(0, buf.size()));
    EXPECT_EQ(b.len_word_at(0), buf.size());
    EXPECT_EQ(b.data_at(0, buf.size()), buf);
  }
  ::close(fd);
}

TEST(FastPath, AReadThatWouldBlockTakesTheTracedPathAndConsumesNothing) {
  Pipe p;
  char buf[64];
  Buffer b(100);
  relive_fp_frame f = frame(SYS_read, {uint64_t(p.fd[0]), addr(buf), sizeof buf});
  EXPECT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_TRACED);
  EXPECT_EQ(b.used_bytes(), 0u);
  // What arrives later is still there for the traced read.
  ASSERT_EQ(::write(p.fd[1], "hello", 5), 5);
  EXPECT_EQ(::read(p.fd[0], buf, sizeof buf), 5);
}

TEST(FastPath, APipeReadReturnsWhatIsThereAsRead2Does) {
  Pipe p;
  ASSERT_EQ(::write(p.fd[1], "0123456789", 10), 10);
  char buf[100];
  Buffer b(100);
  relive_fp_frame f = frame(SYS_read, {uint64_t(p.fd[0]), addr(buf), sizeof buf});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 10);
  EXPECT_EQ(b.data_at(0, 10), "0123456789");
  EXPECT_EQ(b.used_bytes(), Buffer::slots(10) * RELIVE_FP_SLOT);
}

// A read of `fd` that the fast path answers with the kernel's error `err`, logged without bytes.
void expect_read_logs_error(int fd, int64_t err) {
  char buf[16];
  Buffer b(100);
  relive_fp_frame f = frame(SYS_read, {uint64_t(fd), addr(buf), sizeof buf});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, err);
  EXPECT_EQ(b.call_at(0).result, err);
  EXPECT_EQ(b.len_word_at(0), 0u);
}

TEST(FastPath, ErrorsAreLoggedAsTheKernelGaveThem) { expect_read_logs_error(9999, -EBADF); }

TEST(FastPath, WhatDoesNotFitOrCannotBeSaidTakesTheTracedPath) {
  relive::testing::TempDir dir;
  std::string path = dir / "f";
  ASSERT_TRUE(relive::write_file_atomic(path, std::string(8192, 'y')).ok());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::string buf(RELIVE_FP_MAX_DATA + 1, '\0');
  Buffer small(Buffer::slots(4096) - 1);
  relive_fp_frame f = frame(SYS_read, {uint64_t(fd), addr(buf.data()), 4096});
  EXPECT_EQ(relive_fast_path(&f, small.bytes.data()), RELIVE_FP_TRACED);  // no room
  Buffer big(100000);
  relive_fp_frame huge = frame(SYS_read, {uint64_t(fd), addr(buf.data()), buf.size()});
  EXPECT_EQ(relive_fast_path(&huge, big.bytes.data()), RELIVE_FP_TRACED);  // over the limit
  relive_fp_frame neg = frame(SYS_pread64, {uint64_t(fd), addr(buf.data()), 10, uint64_t(-1)});
  EXPECT_EQ(relive_fast_path(&neg, big.bytes.data()), RELIVE_FP_TRACED);  // pread64's EINVAL
  relive_fp_frame other = frame(SYS_getpgrp, {});
  EXPECT_EQ(relive_fast_path(&other, big.bytes.data()), RELIVE_FP_TRACED);
  Buffer odd(100, 7);  // a mode neither recorder nor replayer writes
  relive_fp_frame r = frame(SYS_read, {uint64_t(fd), addr(buf.data()), 10});
  EXPECT_EQ(relive_fast_path(&r, odd.bytes.data()), RELIVE_FP_TRACED);
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 0);  // none of them read anything
  EXPECT_EQ(small.used_bytes() + big.used_bytes() + odd.used_bytes(), 0u);
  ::close(fd);
}

TEST(FastPath, RecordsAWriteWithItsBytes) {
  Pipe p;
  Buffer b(100);
  const char msg[] = "a line of output\n";
  relive_fp_frame f = frame(SYS_write, {uint64_t(p.fd[1]), addr(msg), sizeof msg - 1});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, static_cast<int64_t>(sizeof msg - 1));
  EXPECT_EQ(b.data_at(0, sizeof msg - 1), msg);
  EXPECT_EQ(b.len_word_at(0), sizeof msg - 1);
  char got[64];
  EXPECT_EQ(::read(p.fd[0], got, sizeof got), static_cast<ssize_t>(sizeof msg - 1));
}

// A pipe with less space than the write: the part that fits goes out here, the rest through
// the traced path (which may block), as one blocking write(2) would have written it all.
TEST(FastPath, AWriteThatFitsOnlyInPartContinuesOnTheTracedPath) {
  Pipe p;
  ASSERT_EQ(::fcntl(p.fd[1], F_SETPIPE_SZ, 4096), 4096);
  std::string fill(4096 - 100, 'f');
  ASSERT_EQ(::write(p.fd[1], fill.data(), fill.size()), static_cast<ssize_t>(fill.size()));
  std::string msg(300, 'm');
  Buffer b(100);
  relive_fp_frame f = frame(SYS_write, {uint64_t(p.fd[1]), addr(msg.data()), msg.size()});
  int action = relive_fast_path(&f, b.bytes.data());
  if (action == RELIVE_FP_TRACED) {
    // The kernel took none of it (a pipe write under PIPE_BUF is all or nothing): untouched.
    EXPECT_EQ(f.args[1], addr(msg.data()));
    EXPECT_EQ(f.args[2], msg.size());
    EXPECT_EQ(b.used_bytes(), 0u);
    return;
  }
  ASSERT_EQ(action, RELIVE_FP_CONTINUE);
  ASSERT_GT(f.partial, 0u);
  ASSERT_LT(f.partial, msg.size());
  EXPECT_EQ(f.args[1], addr(msg.data()) + f.partial);
  EXPECT_EQ(f.args[2], msg.size() - f.partial);
  EXPECT_EQ(b.len_word_at(0), f.partial | RELIVE_FP_CONTINUED);
  EXPECT_EQ(b.call_at(0).result, static_cast<int64_t>(f.partial));
}

TEST(FastPath, AWriteToAFullPipeTakesTheTracedPathAndWritesNothing) {
  Pipe p;
  ASSERT_EQ(::fcntl(p.fd[1], F_SETPIPE_SZ, 4096), 4096);
  std::string fill(4096, 'f');
  ASSERT_EQ(::write(p.fd[1], fill.data(), fill.size()), 4096);
  Buffer b(100);
  relive_fp_frame f = frame(SYS_write, {uint64_t(p.fd[1]), addr("x"), 1});
  EXPECT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_TRACED);
  EXPECT_EQ(b.used_bytes(), 0u);
}

TEST(FastPath, ReplayAnswersAPrefilledReadWithItsBytes) {
  Buffer b(100, RELIVE_FP_REPLAY_MODE);
  char buf[32] = {};
  b.prefill(SYS_read, {3, addr(buf), sizeof buf}, 5, "hello");
  b.prefill(SYS_write, {1, addr("out"), 3}, 3, std::string(3, '\0'));
  b.header()->room = Buffer::slots(5) + Buffer::slots(3);
  relive_fp_frame f = frame(SYS_read, {3, addr(buf), sizeof buf});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(b.header()->room, Buffer::slots(3));
  // The write: same bytes, answered; no descriptor 1 is written (the replayer reproduces it).
  relive_fp_frame w = frame(SYS_write, {1, addr("out"), 3});
  ASSERT_EQ(relive_fast_path(&w, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(w.result, 3);
  EXPECT_EQ(b.header()->room, 0u);
  EXPECT_EQ(b.used_bytes(), (Buffer::slots(5) + Buffer::slots(3)) * RELIVE_FP_SLOT);
  // Nothing left: the next call takes the traced path.
  relive_fp_frame again = frame(SYS_read, {3, addr(buf), sizeof buf});
  EXPECT_EQ(relive_fast_path(&again, b.bytes.data()), RELIVE_FP_TRACED);
}

TEST(FastPath, ReplaySendsACallThatDiffersDownTheTracedPath) {
  const char same[] = "same", other[] = "diff";
  for (int which = 0; which < 4; ++which) {
    Buffer b(100, RELIVE_FP_REPLAY_MODE);
    b.prefill(SYS_write, {1, addr(same), 4}, 4, std::string(4, '\0'));
    b.header()->room = Buffer::slots(4);
    relive_fp_frame f = frame(SYS_write, {1, addr(same), 4});
    if (which == 0) f.nr = SYS_read;
    if (which == 1) f.args[0] = 2;
    if (which == 2) f.args[5] = 1;  // a register the call ignores still counts, as traced
    if (which == 3) f.args[1] = addr(other);
    EXPECT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_TRACED) << which;
    EXPECT_EQ(b.used_bytes(), 0u) << which;
    EXPECT_EQ(b.header()->room, Buffer::slots(4)) << which;
  }
}

// The log keeps a write's hash, not its bytes: the replayed write leaves its bytes in the entry
// for the replayer to check and to reproduce the output from.
TEST(FastPath, ReplayOfAWriteLeavesItsBytesForTheReplayer) {
  char out[4] = {'s', 'a', 'm', 'x'};
  Buffer b(100, RELIVE_FP_REPLAY_MODE);
  b.prefill(SYS_write, {1, addr(out), 4}, 4, std::string(4, '\0'));
  b.header()->room = Buffer::slots(4);
  relive_fp_frame f = frame(SYS_write, {1, addr(out), 4});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 4);
  EXPECT_EQ(b.data_at(0, 4), "samx");
}

TEST(FastPath, ReplayOfAContinuedWriteContinuesOnTheTracedPath) {
  std::string msg(300, 'm');
  Buffer b(100, RELIVE_FP_REPLAY_MODE);
  b.prefill(SYS_write, {5, addr(msg.data()), msg.size()}, 96, std::string(96, '\0'), true);
  b.header()->room = Buffer::slots(96);
  relive_fp_frame f = frame(SYS_write, {5, addr(msg.data()), msg.size()});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_CONTINUE);
  EXPECT_EQ(f.partial, 96u);
  EXPECT_EQ(f.args[1], addr(msg.data()) + 96);
  EXPECT_EQ(f.args[2], msg.size() - 96);
  EXPECT_EQ(b.data_at(0, 96), msg.substr(0, 96));
}

// The fast path's rules are the syscall table's out-buffer rules for the calls it takes: the
// same kind, argument and size (tracee/syscall_table.h), and every call it takes is one the
// recorder emulates; the calls that take bytes are the table's output writes.
TEST(FastPath, RulesAgreeWithTheSyscallTable) {
  using relive::tracee::OutRule;
  using relive::tracee::syscall_spec;
  int taken = 0;
  for (int nr = 0; nr <= relive::tracee::kMaxSyscall; ++nr) {
    uint64_t args[6] = {3, 0x1000, 16, 0, 0, 0};
    if (nr == SYS_ioctl) args[1] = FIONREAD;
    if (nr == SYS_fcntl) args[1] = F_GETFL;
    if (nr == SYS_getxattr || nr == SYS_lgetxattr || nr == SYS_fgetxattr) args[3] = 16;
    if (nr == SYS_futex) args[1] = FUTEX_WAKE_PRIVATE;
    relive_fp_rule r;
    if (!relive_fp_rule_of(uint64_t(nr), args, &r)) continue;
    ++taken;
    const relive::tracee::SyscallSpec& spec = syscall_spec(nr);
    SCOPED_TRACE(spec.name);
    EXPECT_EQ(spec.policy, relive::tracee::Policy::kEmulate);
    EXPECT_EQ(bool(r.takes_bytes), bool(spec.flags & relive::tracee::kOutputWrite));
    if (r.out == RELIVE_FP_OUT_FILE_ID) {  // openat, close: nothing of the program's written
      EXPECT_EQ(spec.out[0].kind, OutRule::kNone);
      EXPECT_TRUE(spec.flags & relive::tracee::kFdTable);
      continue;
    }
    if (nr == SYS_futex) {  // by its arguments in the table: a wake writes nothing
      EXPECT_EQ(spec.out[0].kind, OutRule::kByArguments);
      EXPECT_EQ(r.out, RELIVE_FP_OUT_NONE);
      continue;
    }
    if (nr == SYS_ioctl) {  // by its arguments in the table: FIONREAD writes an int
      EXPECT_EQ(spec.out[0].kind, OutRule::kByArguments);
      EXPECT_EQ(r.out, RELIVE_FP_OUT_FIXED);
      EXPECT_EQ(r.size, sizeof(int));
      continue;
    }
    EXPECT_EQ(r.out, spec.out[0].kind);
    if (r.out == RELIVE_FP_OUT_NONE) continue;
    EXPECT_EQ(r.arg, spec.out[0].arg);
    if (r.out != RELIVE_FP_OUT_RESULT) EXPECT_EQ(r.size, spec.out[0].size);
    if (r.out == RELIVE_FP_OUT_ARG_TIMES) EXPECT_EQ(r.count, spec.out[0].count);
    // Nothing else written (recvfrom's address only when asked for, which the fast path is not).
    if (nr != SYS_recvfrom) EXPECT_EQ(spec.out[1].kind, OutRule::kNone);
  }
  EXPECT_EQ(taken, 35);
  // The forms it leaves to the traced path.
  relive_fp_rule r;
  uint64_t from[6] = {3, 0x1000, 16, 0, 0x2000, 0x3000};
  EXPECT_FALSE(relive_fp_rule_of(SYS_recvfrom, from, &r));  // wants the sender's address
  uint64_t waitall[6] = {3, 0x1000, 16, MSG_WAITALL, 0, 0};
  EXPECT_FALSE(relive_fp_rule_of(SYS_recvfrom, waitall, &r));
  uint64_t tcgets[6] = {0, 0x5401, 0x1000, 0, 0, 0};
  EXPECT_FALSE(relive_fp_rule_of(SYS_ioctl, tcgets, &r));
  uint64_t setfl[6] = {3, F_SETFL, 0, 0, 0, 0};
  EXPECT_FALSE(relive_fp_rule_of(SYS_fcntl, setfl, &r));
  uint64_t sigmask[6] = {3, 0x1000, 8, 0, 0x2000, 8};
  EXPECT_FALSE(relive_fp_rule_of(SYS_epoll_pwait, sigmask, &r));
  uint64_t msg_waitall[6] = {3, 0x1000, MSG_WAITALL, 0, 0, 0};
  EXPECT_FALSE(relive_fp_rule_of(SYS_recvmsg, msg_waitall, &r));
  uint64_t errqueue[6] = {3, 0x1000, MSG_ERRQUEUE, 0, 0, 0};
  EXPECT_FALSE(relive_fp_rule_of(SYS_recvmsg, errqueue, &r));
  uint64_t futex_wait[6] = {0x1000, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0};
  EXPECT_FALSE(relive_fp_rule_of(SYS_futex, futex_wait, &r));
  uint64_t wake_op[6] = {0x1000, FUTEX_WAKE_OP, 1, 1, 0x2000, 0};
  EXPECT_FALSE(relive_fp_rule_of(SYS_futex, wake_op, &r));
  uint64_t wake[6] = {0x1000, FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 1, 0, 0, 0};
  EXPECT_TRUE(relive_fp_rule_of(SYS_futex, wake, &r));
}

// Room is taken for the largest entry the call may leave and what it did not use goes back.
TEST(FastPath, ACallGivesBackTheRoomItsEntryDidNotUse) {
  Pipe p;
  ASSERT_EQ(::write(p.fd[1], "0123456789", 10), 10);
  std::string buf(4096, '\0');
  Buffer b(1000);
  relive_fp_frame f = frame(SYS_read, {uint64_t(p.fd[0]), addr(buf.data()), buf.size()});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 10);
  EXPECT_EQ(b.header()->room, 1000 - Buffer::slots(10));
  // One that would block gives it all back.
  relive_fp_frame again = frame(SYS_read, {uint64_t(p.fd[0]), addr(buf.data()), buf.size()});
  EXPECT_EQ(relive_fast_path(&again, b.bytes.data()), RELIVE_FP_TRACED);
  EXPECT_EQ(b.header()->room, 1000 - Buffer::slots(10));
}

// A descriptor the program made non-blocking: "it would block" is the program's own answer,
// logged by the fast path (an event loop reads until EAGAIN).
TEST(FastPath, EagainOnANonBlockingDescriptorIsLoggedHere) {
  Pipe p;
  ASSERT_EQ(::fcntl(p.fd[0], F_SETFL, O_NONBLOCK), 0);
  expect_read_logs_error(p.fd[0], -EAGAIN);
}

TEST(FastPath, StatCallsLogTheStructTheKernelWrote) {
  relive::testing::TempDir dir;
  std::string path = dir / "f";
  ASSERT_TRUE(relive::write_file_atomic(path, std::string(1234, 'z')).ok());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct stat want {};
  ASSERT_EQ(::fstat(fd, &want), 0);
  Buffer b(100);
  struct stat got {};
  relive_fp_frame f = frame(SYS_fstat, {uint64_t(fd), addr(&got)});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 0);
  EXPECT_EQ(got.st_size, 1234);
  EXPECT_EQ(got.st_ino, want.st_ino);
  EXPECT_EQ(b.len_word_at(0), sizeof(struct stat));
  EXPECT_EQ(b.data_at(0, sizeof got), std::string(reinterpret_cast<char*>(&got), sizeof got));
  uint64_t second = b.used_bytes();
  struct stat at {};
  relive_fp_frame s = frame(SYS_newfstatat, {uint64_t(AT_FDCWD), addr(path.c_str()), addr(&at), 0});
  ASSERT_EQ(relive_fast_path(&s, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(at.st_ino, want.st_ino);
  EXPECT_EQ(b.data_at(second, sizeof at), std::string(reinterpret_cast<char*>(&at), sizeof at));
  // A missing file: the error, no bytes.
  std::string missing = dir / "missing";
  uint64_t third = b.used_bytes();
  relive_fp_frame m =
      frame(SYS_newfstatat, {uint64_t(AT_FDCWD), addr(missing.c_str()), addr(&at), 0});
  ASSERT_EQ(relive_fast_path(&m, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(m.result, -ENOENT);
  EXPECT_EQ(b.len_word_at(third), 0u);
  ::close(fd);
}

TEST(FastPath, CallsThatWriteNothingLogTheirResult) {
  relive::testing::TempDir dir;
  std::string path = dir / "f";
  ASSERT_TRUE(relive::write_file_atomic(path, std::string(100, 'z')).ok());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  Buffer b(100);
  relive_fp_frame seek = frame(SYS_lseek, {uint64_t(fd), 40, SEEK_SET});
  ASSERT_EQ(relive_fast_path(&seek, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(seek.result, 40);
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 40);
  relive_fp_frame fl = frame(SYS_fcntl, {uint64_t(fd), F_GETFL});
  ASSERT_EQ(relive_fast_path(&fl, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(fl.result, ::fcntl(fd, F_GETFL));
  relive_fp_frame id = frame(SYS_gettid, {});
  ASSERT_EQ(relive_fast_path(&id, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(id.result, ::gettid());
  EXPECT_EQ(b.used_bytes(), 3 * RELIVE_FP_SLOT);  // one slot each
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(b.len_word_at(i * RELIVE_FP_SLOT), 0u);
  ::close(fd);
}

// poll and epoll_wait are made with a zero timeout: what is ready is logged; nothing ready
// where the program would wait takes the traced path (which waits), consuming nothing.
TEST(FastPath, PollAndEpollWaitDoNotWait) {
  Pipe p;
  Buffer b(100);
  struct pollfd fds[2] = {{p.fd[0], POLLIN, 0}, {p.fd[1], POLLOUT, 0}};
  relive_fp_frame waits = frame(SYS_poll, {addr(fds), 1, uint64_t(-1)});
  EXPECT_EQ(relive_fast_path(&waits, b.bytes.data()), RELIVE_FP_TRACED);
  EXPECT_EQ(b.used_bytes(), 0u);
  EXPECT_EQ(b.header()->room, 100u);
  relive_fp_frame zero = frame(SYS_poll, {addr(fds), 1, 0});
  ASSERT_EQ(relive_fast_path(&zero, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(zero.result, 0);  // the program's own zero timeout: its answer
  ASSERT_EQ(::write(p.fd[1], "x", 1), 1);
  uint64_t at = b.used_bytes();
  relive_fp_frame ready = frame(SYS_poll, {addr(fds), 2, 5000});
  ASSERT_EQ(relive_fast_path(&ready, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(ready.result, 2);
  EXPECT_EQ(fds[0].revents, POLLIN);
  EXPECT_EQ(b.len_word_at(at), sizeof fds);
  EXPECT_EQ(b.data_at(at, sizeof fds), std::string(reinterpret_cast<char*>(fds), sizeof fds));

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  ASSERT_GE(ep, 0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0x1122334455667788ull;
  ASSERT_EQ(::epoll_ctl(ep, EPOLL_CTL_ADD, p.fd[0], &ev), 0);
  epoll_event out[8] = {};
  at = b.used_bytes();
  relive_fp_frame e = frame(SYS_epoll_wait, {uint64_t(ep), addr(out), 8, uint64_t(-1)});
  ASSERT_EQ(relive_fast_path(&e, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(e.result, 1);
  EXPECT_EQ(out[0].data.u64, 0x1122334455667788ull);
  EXPECT_EQ(b.len_word_at(at), sizeof(epoll_event));
  char c;
  ASSERT_EQ(::read(p.fd[0], &c, 1), 1);
  at = b.used_bytes();
  relive_fp_frame idle = frame(SYS_epoll_wait, {uint64_t(ep), addr(out), 8, 100});
  EXPECT_EQ(relive_fast_path(&idle, b.bytes.data()), RELIVE_FP_TRACED);
  EXPECT_EQ(b.used_bytes(), at);
  ::close(ep);
}

TEST(FastPath, SocketSendsAndReceivesDoNotWait) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Buffer b(100);
  char buf[32] = {};
  relive_fp_frame empty = frame(SYS_recvfrom, {uint64_t(sv[0]), addr(buf), sizeof buf, 0, 0, 0});
  EXPECT_EQ(relive_fast_path(&empty, b.bytes.data()), RELIVE_FP_TRACED);  // would wait
  relive_fp_frame dontwait =
      frame(SYS_recvfrom, {uint64_t(sv[0]), addr(buf), sizeof buf, MSG_DONTWAIT, 0, 0});
  ASSERT_EQ(relive_fast_path(&dontwait, b.bytes.data()), RELIVE_FP_DONE);  // asked not to
  EXPECT_EQ(dontwait.result, -EAGAIN);
  uint64_t at = b.used_bytes();
  relive_fp_frame send = frame(SYS_sendto, {uint64_t(sv[1]), addr("request"), 7, 0, 0, 0});
  ASSERT_EQ(relive_fast_path(&send, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(send.result, 7);
  EXPECT_EQ(b.data_at(at, 7), "request");
  at = b.used_bytes();
  relive_fp_frame recv = frame(SYS_recvfrom, {uint64_t(sv[0]), addr(buf), sizeof buf, 0, 0, 0});
  ASSERT_EQ(relive_fast_path(&recv, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(recv.result, 7);
  EXPECT_EQ(std::string(buf, 7), "request");
  EXPECT_EQ(b.data_at(at, 7), "request");
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST(FastPath, QueriesLogWhatTheKernelWrote) {
  Pipe p;
  ASSERT_EQ(::write(p.fd[1], "12345", 5), 5);
  Buffer b(100);
  int avail = -1;
  relive_fp_frame q = frame(SYS_ioctl, {uint64_t(p.fd[0]), FIONREAD, addr(&avail)});
  ASSERT_EQ(relive_fast_path(&q, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(avail, 5);
  EXPECT_EQ(b.data_at(0, 4), std::string(reinterpret_cast<char*>(&avail), 4));
  uint64_t at = b.used_bytes();
  char random[32] = {};
  relive_fp_frame g = frame(SYS_getrandom, {addr(random), sizeof random, 0});
  ASSERT_EQ(relive_fast_path(&g, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(g.result, 32);
  EXPECT_EQ(b.data_at(at, 32), std::string(random, 32));
  relive::testing::TempDir dir;
  ASSERT_TRUE(relive::write_file_atomic(dir / "entry", "x").ok());
  int d = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(d, 0);
  char dents[4096];
  at = b.used_bytes();
  relive_fp_frame gd = frame(SYS_getdents64, {uint64_t(d), addr(dents), sizeof dents});
  ASSERT_EQ(relive_fast_path(&gd, b.bytes.data()), RELIVE_FP_DONE);
  ASSERT_GT(gd.result, 0);
  EXPECT_EQ(b.len_word_at(at), uint64_t(gd.result));
  EXPECT_EQ(b.data_at(at, uint64_t(gd.result)), std::string(dents, uint64_t(gd.result)));
  ::close(d);
}

TEST(FastPath, ReplayWritesAPrefilledCallsLoggedBytesWhereItsRuleSays) {
  Buffer b(100, RELIVE_FP_REPLAY_MODE);
  struct stat st {};
  std::string logged(sizeof st, 'S');
  b.prefill(SYS_fstat, {4, addr(&st)}, 0, logged);
  epoll_event events[4] = {};
  std::string two(2 * sizeof(epoll_event), 'E');
  b.prefill(SYS_epoll_wait, {5, addr(events), 4, uint64_t(-1)}, 2, two);
  b.header()->room = Buffer::slots(logged.size()) + Buffer::slots(two.size());
  relive_fp_frame f = frame(SYS_fstat, {4, addr(&st)});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&st), sizeof st), logged);
  // A replayed epoll_wait does not wait, whatever its timeout: the log says what was ready.
  relive_fp_frame e = frame(SYS_epoll_wait, {5, addr(events), 4, uint64_t(-1)});
  ASSERT_EQ(relive_fast_path(&e, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(e.result, 2);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(events), two.size()), two);
  EXPECT_EQ(b.header()->room, 0u);
}

// writev: the iovecs are copied (a bad array is the traced call's EFAULT), the bytes that went
// out are gathered into the entry, and a part write continues with the iovecs of the rest.
TEST(FastPath, WritevGathersWhatWentOutAndContinuesWithTheRest) {
  Pipe p;
  Buffer b(100);
  char head[] = "head:", body[] = "the body";
  iovec iov[2] = {{head, 5}, {body, 8}};
  relive_fp_frame f = frame(SYS_writev, {uint64_t(p.fd[1]), addr(iov), 2});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 13);
  EXPECT_EQ(b.data_at(0, 13), "head:the body");
  char got[32];
  EXPECT_EQ(::read(p.fd[0], got, sizeof got), 13);
  relive_fp_frame bad = frame(SYS_writev, {uint64_t(p.fd[1]), 16, 2});  // an unmapped array
  EXPECT_EQ(relive_fast_path(&bad, b.bytes.data()), RELIVE_FP_TRACED);
  relive_fp_frame many = frame(SYS_writev, {uint64_t(p.fd[1]), addr(iov), RELIVE_FP_MAX_IOV + 1});
  EXPECT_EQ(relive_fast_path(&many, b.bytes.data()), RELIVE_FP_TRACED);

  ASSERT_EQ(::fcntl(p.fd[1], F_SETPIPE_SZ, 4096), 4096);
  std::string fill(4096 - 100, 'f');
  ASSERT_EQ(::write(p.fd[1], fill.data(), fill.size()), static_cast<ssize_t>(fill.size()));
  std::string a(50, 'a'), c(250, 'c');
  iovec big[2] = {{a.data(), a.size()}, {c.data(), c.size()}};
  uint64_t at = b.used_bytes();
  relive_fp_frame part = frame(SYS_writev, {uint64_t(p.fd[1]), addr(big), 2});
  int action = relive_fast_path(&part, b.bytes.data());
  if (action == RELIVE_FP_TRACED) return;  // the kernel took none of it: untouched
  ASSERT_EQ(action, RELIVE_FP_CONTINUE);
  ASSERT_GT(part.partial, 50u);  // past the first iovec: the rest starts inside the second
  ASSERT_LT(part.partial, 300u);
  EXPECT_EQ(b.len_word_at(at), part.partial | RELIVE_FP_CONTINUED);
  EXPECT_EQ(part.args[1], addr(part.rest));
  EXPECT_EQ(part.args[2], 1u);
  EXPECT_EQ(part.rest[0].base, addr(c.data()) + (part.partial - 50));
  EXPECT_EQ(part.rest[0].len, 300 - part.partial);
}

TEST(FastPath, ReplayOfAWritevLeavesTheGatheredBytesForTheReplayer) {
  char one[] = "ab", two[] = "cdef";
  iovec iov[2] = {{one, 2}, {two, 4}};
  Buffer b(100, RELIVE_FP_REPLAY_MODE);
  b.prefill(SYS_writev, {7, addr(iov), 2}, 6, std::string(6, '\0'));
  b.header()->room = Buffer::slots(6);
  relive_fp_frame f = frame(SYS_writev, {7, addr(iov), 2});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 6);
  EXPECT_EQ(b.data_at(0, 6), "abcdef");
}

// openat and close leave the identity of their file in the entry (the recorder tells the
// program's stdout and stderr by it); a FIFO, whose open waits for its other end, is not opened
// here at all, and neither is a socket closed (SO_LINGER).
TEST(FastPath, OpenAndCloseLogTheFileTheyOpenedOrClosed) {
  relive::testing::TempDir dir;
  std::string path = dir / "f";
  ASSERT_TRUE(relive::write_file_atomic(path, "x").ok());
  struct stat want {};
  ASSERT_EQ(::stat(path.c_str(), &want), 0);
  Buffer b(100);
  relive_fp_frame o = frame(SYS_openat, {uint64_t(AT_FDCWD), addr(path.c_str()), O_RDONLY});
  ASSERT_EQ(relive_fast_path(&o, b.bytes.data()), RELIVE_FP_DONE);
  ASSERT_GE(o.result, 0);
  uint64_t id[2];
  ASSERT_EQ(b.len_word_at(0), sizeof id);
  std::memcpy(id, b.data_at(0, sizeof id).data(), sizeof id);
  EXPECT_EQ(id[0], uint64_t(want.st_dev));
  EXPECT_EQ(id[1], uint64_t(want.st_ino));
  uint64_t at = b.used_bytes();
  relive_fp_frame c = frame(SYS_close, {uint64_t(o.result)});
  ASSERT_EQ(relive_fast_path(&c, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(c.result, 0);
  EXPECT_EQ(b.data_at(at, sizeof id), b.data_at(0, sizeof id));
  EXPECT_EQ(::fcntl(int(o.result), F_GETFD), -1);  // closed
  // Created by the call: the O_PATH probe finds nothing, the program's O_CREAT makes a file.
  std::string made = dir / "made";
  relive_fp_frame cr =
      frame(SYS_openat, {uint64_t(AT_FDCWD), addr(made.c_str()), O_WRONLY | O_CREAT, 0600});
  ASSERT_EQ(relive_fast_path(&cr, b.bytes.data()), RELIVE_FP_DONE);
  ASSERT_GE(cr.result, 0);
  ::close(int(cr.result));
  std::string missing = dir / "missing";
  relive_fp_frame m = frame(SYS_openat, {uint64_t(AT_FDCWD), addr(missing.c_str()), O_RDONLY});
  ASSERT_EQ(relive_fast_path(&m, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(m.result, -ENOENT);

  std::string fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  uint64_t before = b.used_bytes();
  relive_fp_frame ff = frame(SYS_openat, {uint64_t(AT_FDCWD), addr(fifo.c_str()), O_RDONLY});
  EXPECT_EQ(relive_fast_path(&ff, b.bytes.data()), RELIVE_FP_TRACED);  // would wait
  // Nobody opened the FIFO: a writer's non-blocking open still finds no reader.
  EXPECT_EQ(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK), -1);
  EXPECT_EQ(errno, ENXIO);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  relive_fp_frame cs = frame(SYS_close, {uint64_t(sv[0])});
  EXPECT_EQ(relive_fast_path(&cs, b.bytes.data()), RELIVE_FP_TRACED);
  EXPECT_EQ(::fcntl(sv[0], F_GETFD), FD_CLOEXEC);  // still open
  EXPECT_EQ(b.used_bytes(), before);
  ::close(sv[0]);
  ::close(sv[1]);
}

// The stub clears RELIVE_FP_STACK_BYTES below its frame after every call (record and replay run
// different code there, and a preemption compares dead stack too): the fast path must never go
// deeper. Its calls run here on a stack of their own, painted, and the deepest byte they touched
// is measured from the frame of the function that makes them (its own few words included).
namespace stack_depth {

ucontext_t main_ctx, calls_ctx;
uint64_t call_sp = 0;
Buffer* buffer = nullptr;
relive_fp_frame frames[10];
char path[64], data[64];
iovec iov[2];
struct stat stat_out;
int sockets[2];
msghdr message;
sockaddr_un sender;

// Fills frames[i] in place (no frame on run_calls' own stack) and makes the call.
__attribute__((noinline)) void call(int i, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                                    uint64_t a3 = 0) {
  std::memset(&frames[i], 0, sizeof frames[i]);
  frames[i].nr = nr;
  frames[i].args[0] = a0, frames[i].args[1] = a1, frames[i].args[2] = a2, frames[i].args[3] = a3;
  relive_fast_path(&frames[i], buffer->bytes.data());
}

void run_calls() {
  call_sp = reinterpret_cast<uint64_t>(__builtin_frame_address(0));
  call(0, SYS_openat, uint64_t(AT_FDCWD), addr(path), O_RDWR);
  uint64_t fd = uint64_t(frames[0].result);
  call(1, SYS_read, fd, addr(data), sizeof data);
  call(2, SYS_pread64, fd, addr(data), sizeof data, 0);
  iov[0] = {data, 4};
  iov[1] = {data + 4, 4};
  call(3, SYS_writev, fd, addr(iov), 2);
  call(4, SYS_write, fd, addr(data), 8);
  call(5, SYS_fstat, fd, addr(&stat_out), 0);
  call(7, SYS_readv, fd, addr(iov), 2);
  call(6, SYS_close, fd, 0, 0);
  message.msg_iov = iov;
  message.msg_iovlen = 2;
  call(8, SYS_sendmsg, uint64_t(sockets[1]), addr(&message), 0);
  message.msg_name = &sender;
  message.msg_namelen = sizeof sender;
  call(9, SYS_recvmsg, uint64_t(sockets[0]), addr(&message), 0);
}

}  // namespace stack_depth

TEST(FastPath, NeverUsesMoreStackThanTheStubClears) {
  relive::testing::TempDir dir;
  std::string file = dir / "f";
  ASSERT_TRUE(relive::write_file_atomic(file, std::string(100, 'd')).ok());
  ASSERT_LT(file.size(), sizeof stack_depth::path);
  std::strcpy(stack_depth::path, file.c_str());
  Buffer b(1000);
  stack_depth::buffer = &b;
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, stack_depth::sockets), 0);
  std::vector<unsigned char> stack(64 << 10, 0xa5);
  ASSERT_EQ(::getcontext(&stack_depth::calls_ctx), 0);
  stack_depth::calls_ctx.uc_stack.ss_sp = stack.data();
  stack_depth::calls_ctx.uc_stack.ss_size = stack.size();
  stack_depth::calls_ctx.uc_link = &stack_depth::main_ctx;
  ::makecontext(&stack_depth::calls_ctx, stack_depth::run_calls, 0);
  ASSERT_EQ(::swapcontext(&stack_depth::main_ctx, &stack_depth::calls_ctx), 0);
  EXPECT_GE(stack_depth::frames[0].result, 0);  // the calls ran
  for (int i = 1; i < 10; ++i) EXPECT_GE(stack_depth::frames[i].result, 0) << i;
  EXPECT_EQ(stack_depth::frames[9].result, 8);  // the message the sendmsg sent
  ::close(stack_depth::sockets[0]);
  ::close(stack_depth::sockets[1]);
  size_t lowest = 0;
  while (lowest < stack.size() && stack[lowest] == 0xa5) ++lowest;
  uint64_t deepest = reinterpret_cast<uint64_t>(stack.data()) + lowest;
  ASSERT_GT(stack_depth::call_sp, deepest);
  uint64_t used = stack_depth::call_sp - deepest;
  EXPECT_LE(used, RELIVE_FP_STACK_BYTES - 64) << used << " bytes below the caller";
}

// readlink and the xattr reads write what the result says; an xattr size query (no buffer)
// writes nothing.
TEST(FastPath, LinksAndAttributesLogWhatTheyRead) {
  relive::testing::TempDir dir;
  std::string link = dir / "link";
  ASSERT_EQ(::symlink("the/target", link.c_str()), 0);
  char buf[64] = {};
  Buffer b(100);
  relive_fp_frame r = frame(SYS_readlink, {addr(link.c_str()), addr(buf), sizeof buf});
  ASSERT_EQ(relive_fast_path(&r, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(r.result, 10);
  EXPECT_EQ(b.data_at(0, 10), "the/target");
  uint64_t at = b.used_bytes();
  relive_fp_frame q = frame(SYS_lgetxattr, {addr(link.c_str()), addr("user.none"), 0, 0});
  ASSERT_EQ(relive_fast_path(&q, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_LT(q.result, 0);  // no such attribute (or none supported): an error, nothing written
  EXPECT_EQ(b.len_word_at(at), 0u);
}

// A futex wake never waits: made here, its count logged (a wake of nobody is 0).
TEST(FastPath, AFutexWakeIsMadeHere) {
  uint32_t word = 0;
  Buffer b(100);
  relive_fp_frame f = frame(SYS_futex, {addr(&word), FUTEX_WAKE_PRIVATE, 1});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 0);
  EXPECT_EQ(b.call_at(0).nr, uint64_t(SYS_futex));
  EXPECT_EQ(b.used_bytes(), RELIVE_FP_SLOT);
  relive_fp_frame w = frame(SYS_futex, {addr(&word), FUTEX_WAIT_PRIVATE, 0});
  EXPECT_EQ(relive_fast_path(&w, b.bytes.data()), RELIVE_FP_TRACED);
}

// readv: the bytes, after the part of each iovec they filled (the log records a scattered read
// where it went); from a pipe it returns what is there, a read that would wait takes the traced
// path, and a regular file is read whole.
TEST(FastPath, ReadvLogsThePartsItFilledAndTheirBytes) {
  Pipe p;
  Buffer b(100);
  ASSERT_EQ(::write(p.fd[1], "abcdefgh", 8), 8);
  char one[3], two[4], three[16];
  iovec iov[3] = {{one, 3}, {two, 4}, {three, 16}};
  relive_fp_frame f = frame(SYS_readv, {uint64_t(p.fd[0]), addr(iov), 3});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 8);
  EXPECT_EQ(std::string(one, 3) + std::string(two, 4) + three[0], "abcdefgh");
  uint64_t head = 3 * RELIVE_FP_IOV_PAIR_BYTES;
  ASSERT_EQ(b.len_word_at(0), head + 8);
  uint64_t parts[6];
  std::memcpy(parts, b.data_at(0, head).data(), head);
  EXPECT_EQ(parts[0], addr(one));
  EXPECT_EQ(parts[1], 3u);
  EXPECT_EQ(parts[2], addr(two));
  EXPECT_EQ(parts[3], 4u);
  EXPECT_EQ(parts[4], addr(three));
  EXPECT_EQ(parts[5], 1u);
  EXPECT_EQ(b.data_at(head, 8), "abcdefgh");
  uint64_t at = b.used_bytes();
  relive_fp_frame empty = frame(SYS_readv, {uint64_t(p.fd[0]), addr(iov), 3});
  EXPECT_EQ(relive_fast_path(&empty, b.bytes.data()), RELIVE_FP_TRACED);  // it would wait
  EXPECT_EQ(b.used_bytes(), at);

  relive::testing::TempDir dir;
  std::string file = dir / "f";
  std::string content(20000, 'x');
  for (size_t i = 0; i < content.size(); i += 11) content[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(relive::write_file_atomic(file, content).ok());
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string x(7000, '\0'), y(30000, '\0');
  iovec whole[2] = {{x.data(), x.size()}, {y.data(), y.size()}};
  Buffer large(1000);  // room for the 37,000 bytes it asks for
  relive_fp_frame r = frame(SYS_readv, {uint64_t(fd), addr(whole), 2});
  ASSERT_EQ(relive_fast_path(&r, large.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(r.result, 20000);
  EXPECT_EQ(x + y.substr(0, 13000), content);
  EXPECT_EQ(large.data_at(2 * RELIVE_FP_IOV_PAIR_BYTES, 20000), content);
  ::close(fd);
}

// Replay of a readv: the logged bytes go to the logged parts.
TEST(FastPath, ReplayOfAReadvScattersItsBytesToItsParts) {
  char one[2] = {}, two[8] = {};
  iovec iov[2] = {{one, 2}, {two, 8}};
  uint64_t parts[4] = {addr(one), 2, addr(two), 3};
  std::string data(reinterpret_cast<const char*>(parts), sizeof parts);
  data += "hello";
  Buffer b(100, RELIVE_FP_REPLAY_MODE);
  b.prefill(SYS_readv, {5, addr(iov), 2}, 5, data);
  b.header()->room = Buffer::slots(data.size());
  relive_fp_frame f = frame(SYS_readv, {5, addr(iov), 2});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(f.result, 5);
  EXPECT_EQ(std::string(one, 2), "he");
  EXPECT_EQ(std::string(two, 3), "llo");
  EXPECT_EQ(two[3], '\0');
}

// sendmsg and recvmsg without control data: a send takes its iovecs' bytes; a receive logs its
// msghdr (lengths and flags are the kernel's), the sender's address and its bytes, as parts. With
// control data (descriptors, credentials) or with nothing to receive, the traced path.
TEST(FastPath, MessagesWithoutControlDataAreSentAndReceivedHere) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  Buffer b(100);
  char head[] = "mes", body[] = "sage!";
  iovec out_iov[2] = {{head, 3}, {body, 5}};
  msghdr out{};
  out.msg_iov = out_iov;
  out.msg_iovlen = 2;
  relive_fp_frame send = frame(SYS_sendmsg, {uint64_t(sv[1]), addr(&out), 0});
  ASSERT_EQ(relive_fast_path(&send, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(send.result, 8);
  EXPECT_EQ(b.data_at(0, 8), "message!");

  char one[4] = {}, two[16] = {};
  iovec in_iov[2] = {{one, 4}, {two, 16}};
  sockaddr_un from{};
  msghdr in{};
  in.msg_name = &from;
  in.msg_namelen = sizeof from;
  in.msg_iov = in_iov;
  in.msg_iovlen = 2;
  uint64_t at = b.used_bytes();
  relive_fp_frame recv = frame(SYS_recvmsg, {uint64_t(sv[0]), addr(&in), 0});
  ASSERT_EQ(relive_fast_path(&recv, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(recv.result, 8);
  EXPECT_EQ(std::string(one, 4) + std::string(two, 4), "message!");
  uint64_t head_bytes = RELIVE_FP_MSG_PARTS * RELIVE_FP_IOV_PAIR_BYTES;
  uint64_t pairs[2 * RELIVE_FP_MSG_PARTS];
  std::memcpy(pairs, b.data_at(at, head_bytes).data(), head_bytes);
  EXPECT_EQ(pairs[0], addr(&in));  // the msghdr, as the kernel left it
  EXPECT_EQ(pairs[1], sizeof(msghdr));
  EXPECT_EQ(pairs[2], addr(&from));
  EXPECT_EQ(pairs[3], in.msg_namelen);  // the sender's address (an unnamed socket's: short)
  EXPECT_EQ(pairs[4], addr(one));
  EXPECT_EQ(pairs[5], 4u);
  EXPECT_EQ(pairs[6], addr(two));
  EXPECT_EQ(pairs[7], 4u);
  for (size_t i = 8; i < 2 * RELIVE_FP_MSG_PARTS; ++i) EXPECT_EQ(pairs[i], 0u) << i;
  EXPECT_EQ(b.len_word_at(at), head_bytes + sizeof(msghdr) + in.msg_namelen + 8);
  std::string logged_hdr = b.data_at(at + head_bytes, sizeof(msghdr));
  EXPECT_EQ(std::memcmp(logged_hdr.data(), &in, sizeof in), 0);
  EXPECT_EQ(b.data_at(at + head_bytes + sizeof(msghdr) + in.msg_namelen, 8), "message!");

  relive_fp_frame empty = frame(SYS_recvmsg, {uint64_t(sv[0]), addr(&in), 0});
  EXPECT_EQ(relive_fast_path(&empty, b.bytes.data()), RELIVE_FP_TRACED);  // it would wait
  char control[64];
  in.msg_control = control;
  in.msg_controllen = sizeof control;
  relive_fp_frame with_control = frame(SYS_recvmsg, {uint64_t(sv[0]), addr(&in), MSG_DONTWAIT});
  EXPECT_EQ(relive_fast_path(&with_control, b.bytes.data()), RELIVE_FP_TRACED);
  out.msg_control = control;
  out.msg_controllen = sizeof control;
  relive_fp_frame send_control = frame(SYS_sendmsg, {uint64_t(sv[1]), addr(&out), 0});
  EXPECT_EQ(relive_fast_path(&send_control, b.bytes.data()), RELIVE_FP_TRACED);
  ::close(sv[0]);
  ::close(sv[1]);
}

// A sendmsg on a stream that takes only part: the rest goes on through the traced path, named by
// the frame's copy of the msghdr.
TEST(FastPath, ASendmsgThatFitsOnlyInPartContinuesOnTheTracedPath) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  int small = 4096;
  ASSERT_EQ(::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  std::string big(200 << 10, 'b');  // within the largest entry, over the socket's room
  iovec iov[1] = {{big.data(), big.size()}};
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = 1;
  Buffer b(20000);
  relive_fp_frame f = frame(SYS_sendmsg, {uint64_t(sv[1]), addr(&m), 0});
  ASSERT_EQ(relive_fast_path(&f, b.bytes.data()), RELIVE_FP_CONTINUE);
  EXPECT_GT(f.partial, 0u);
  EXPECT_LT(f.partial, big.size());
  EXPECT_EQ(f.args[1], addr(&f.msg));
  EXPECT_EQ(f.msg.iov, addr(f.rest));
  EXPECT_EQ(f.msg.iovlen, 1u);
  EXPECT_EQ(f.rest[0].base, addr(big.data()) + f.partial);
  EXPECT_EQ(f.rest[0].len, big.size() - f.partial);
  ::close(sv[0]);
  ::close(sv[1]);
}

// Replay: a recvmsg's logged parts are written where they were; a sendmsg's bytes are gathered
// for the replayer to check.
TEST(FastPath, ReplayOfMessagesWritesTheirPartsAndGathersWhatWentOut) {
  char one[4] = {}, two[16] = {};
  iovec in_iov[2] = {{one, 4}, {two, 16}};
  msghdr in{};
  in.msg_iov = in_iov;
  in.msg_iovlen = 2;
  msghdr logged = in;
  logged.msg_flags = MSG_EOR;
  uint64_t pairs[2 * RELIVE_FP_MSG_PARTS] = {addr(&in), sizeof(msghdr), 0, 0, addr(one),
                                             4,         addr(two),      2};
  std::string data(reinterpret_cast<const char*>(pairs), sizeof pairs);
  data.append(reinterpret_cast<const char*>(&logged), sizeof logged);
  data += "abcdef";
  char text[] = "hi there";
  iovec out_iov[1] = {{text, 8}};
  msghdr out{};
  out.msg_iov = out_iov;
  out.msg_iovlen = 1;
  Buffer b(100, RELIVE_FP_REPLAY_MODE);
  b.prefill(SYS_recvmsg, {5, addr(&in), 0}, 6, data);
  b.prefill(SYS_sendmsg, {5, addr(&out), 0}, 8, std::string(8, '\0'));
  b.header()->room = Buffer::slots(data.size()) + Buffer::slots(8);
  relive_fp_frame r = frame(SYS_recvmsg, {5, addr(&in), 0});
  ASSERT_EQ(relive_fast_path(&r, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(r.result, 6);
  EXPECT_EQ(std::string(one, 4) + std::string(two, 2), "abcdef");
  EXPECT_EQ(in.msg_flags, MSG_EOR);
  relive_fp_frame s = frame(SYS_sendmsg, {5, addr(&out), 0});
  ASSERT_EQ(relive_fast_path(&s, b.bytes.data()), RELIVE_FP_DONE);
  EXPECT_EQ(s.result, 8);
  EXPECT_EQ(b.data_at(Buffer::slots(data.size()) * RELIVE_FP_SLOT, 8), "hi there");
}
