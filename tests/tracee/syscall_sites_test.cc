// A patched syscall site run in this process: a stand-in for a libc wrapper (`mov $nr,%eax`, the
// site's bytes, `ret`) patched to jump to a stub, which calls the fast path (fast_path.c, built
// for the host) on a buffer in this process's memory. No tracer: a call the fast path sends down
// the traced path is simply made by the stub's own `syscall`.
#include "tracee/syscall_sites.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "tracee/fast_path_abi.h"
#include "tracee/fast_path_blob.h"

namespace relive::tracee {
namespace {

// Two pages: the wrapper at the start of the first, stubs in the second.
class PatchedWrapper {
 public:
  explicit PatchedWrapper(int nr, std::string_view site = kSitePattern) : site_bytes_(site) {
    mem_ = static_cast<unsigned char*>(::mmap(nullptr, 8192, PROT_READ | PROT_WRITE | PROT_EXEC,
                                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(mem_, MAP_FAILED);
    std::string code;
    code += "\x49\x89\xca";  // mov %rcx,%r10   (the C ABI's fourth argument, the kernel's)
    code += '\xb8';          // mov $nr,%eax
    code.append(reinterpret_cast<const char*>(&nr), 4);
    site_ = reinterpret_cast<uint64_t>(mem_) + code.size();
    code += site;
    code += '\xc3';  // ret
    std::memcpy(mem_, code.data(), code.size());
    buffer_.assign(sizeof(relive_fp_header) + 2000 * RELIVE_FP_SLOT, '\0');
    header()->next = header()->logged =
        reinterpret_cast<uint64_t>(buffer_.data()) + sizeof(relive_fp_header);
    header()->room = 2000;
  }
  ~PatchedWrapper() { ::munmap(mem_, 8192); }

  // `fast_path`: the host build's entry point, or the blob's where it is mapped.
  void patch(uint64_t fast_path = reinterpret_cast<uint64_t>(&relive_fast_path)) {
    uint64_t stub_at = reinterpret_cast<uint64_t>(mem_) + 4096;
    SiteStub stub = site_stub(site_, site_bytes_, stub_at, fast_path,
                              reinterpret_cast<uint64_t>(buffer_.data()));
    std::memcpy(mem_ + 4096, stub.code.data(), stub.code.size());
    std::string jump = site_jump(site_, site_bytes_, stub_at);
    std::memcpy(reinterpret_cast<void*>(site_), jump.data(), jump.size());
  }

  int64_t call(uint64_t a, uint64_t b, uint64_t c, uint64_t d = 0) {
    using Fn = int64_t (*)(uint64_t, uint64_t, uint64_t, uint64_t);
    return reinterpret_cast<Fn>(mem_)(a, b, c, d);
  }
  relive_fp_header* header() { return reinterpret_cast<relive_fp_header*>(buffer_.data()); }
  uint64_t used() {
    return header()->next - reinterpret_cast<uint64_t>(buffer_.data()) - sizeof(relive_fp_header);
  }
  uint64_t site() const { return site_; }

 private:
  std::string site_bytes_;
  unsigned char* mem_;
  uint64_t site_ = 0;
  std::string buffer_;
};

constexpr std::string_view kAllForms[] = {
    kSitePattern,    kSitePatternAsm,     kSitePatternInt,      kSitePatternMovInt,
    kSitePatternRet, kSitePatternRetNopw, kSitePatternRetCsNopw};

uint64_t slots(uint64_t len) {
  return (RELIVE_FP_DATA_OFFSET + len + RELIVE_FP_SLOT - 1) / RELIVE_FP_SLOT;
}

}  // namespace

TEST(SyscallSites, RecognisesGlibcsSitesOnly) {
  // Read as the recorder reads a site: kSiteBytes, whatever follows the pattern.
  auto padded = [](std::string_view p) { return std::string(p) + std::string(9 - p.size(), 'x'); };
  EXPECT_EQ(site_length(padded(kSitePattern)), 8u);
  EXPECT_EQ(site_length(padded(kSitePatternAsm)), 8u);
  EXPECT_EQ(site_length(padded(kSitePatternInt)), 7u);
  EXPECT_EQ(site_length(kSitePatternMovInt), 9u);
  EXPECT_EQ(site_length(std::string_view("\x0f\x05\x48\x3d\x02\xf0\xff\xff\x90", 9)), 0u);
  EXPECT_EQ(site_length(std::string_view("\x0f\x05\x89\xc2\xf7\xda\x3d\x00\xf0", 9)), 0u);
  EXPECT_EQ(site_length(kSitePattern.substr(0, 7)), 0u);  // cut short: the end of a mapping
  EXPECT_EQ(site_length(padded(kSitePatternRet)), 5u);
  EXPECT_EQ(site_length(padded(kSitePatternRetNopw)), 5u);
  EXPECT_EQ(site_length(padded(kSitePatternRetCsNopw)), 5u);
  EXPECT_EQ(site_length(padded(std::string_view("\x0f\x05\xc3\x48\x89", 5))), 0u);  // code
  for (std::string_view p : kAllForms) {
    std::string jump = site_jump(0x1000, padded(p), 0x2000);
    EXPECT_EQ(jump.size(), site_length(padded(p)));
    EXPECT_EQ(static_cast<unsigned char>(jump[0]), 0xe9);
    int32_t rel;
    std::memcpy(&rel, jump.data() + 1, 4);
    EXPECT_EQ(0x1000 + 5 + rel, 0x2000);
  }
}

// Every site form, patched: the call goes through the fast path, and the wrapper returns what the
// site's own instructions after the `syscall` make of the result.
TEST(SyscallSites, EverySiteFormReturnsThroughItsOwnInstructions) {
  for (std::string_view p : kAllForms) {
    PatchedWrapper w(SYS_getpid, std::string(p) + "\x90\x90\x90\x90");
    w.patch();
    EXPECT_EQ(static_cast<int32_t>(w.call(0, 0, 0)), ::getpid()) << p.size();
    EXPECT_EQ(w.used(), RELIVE_FP_SLOT) << p.size();  // logged by the fast path
  }
}

// fork through a patched site (syscall(2)'s, which takes any call): made at once by the stub on
// the program's own stack; parent and child both come back through the site's instructions.
TEST(SyscallSites, AStackCallIsMadeAtOnceOnTheProgramsStack) {
  PatchedWrapper w(SYS_fork, kSitePatternAsm);
  w.patch();
  int64_t pid = w.call(0, 0, 0);
  if (pid == 0) ::_exit(7);
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(static_cast<pid_t>(pid), &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7) << status;
  EXPECT_EQ(w.used(), 0u);
}

TEST(SyscallSites, APatchedReadIsMadeByTheFastPathAndLogged) {
  int fd[2];
  ASSERT_EQ(::pipe2(fd, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fd[1], "payload", 7), 7);
  PatchedWrapper w(SYS_read);
  char buf[64] = {};
  w.patch();
  EXPECT_EQ(w.call(fd[0], reinterpret_cast<uint64_t>(buf), sizeof buf), 7);
  EXPECT_EQ(std::string(buf, 7), "payload");
  EXPECT_EQ(w.used(), slots(7) * RELIVE_FP_SLOT);
  // Nothing left in the pipe, which is non-blocking here: the program's own answer, EAGAIN,
  // logged by the fast path.
  ASSERT_EQ(::fcntl(fd[0], F_SETFL, O_NONBLOCK), 0);
  EXPECT_EQ(w.call(fd[0], reinterpret_cast<uint64_t>(buf), sizeof buf), -EAGAIN);
  EXPECT_EQ(w.used(), (slots(7) + 1) * RELIVE_FP_SLOT);
  ::close(fd[0]);
  ::close(fd[1]);
}

TEST(SyscallSites, AnUnpatchedSiteIsAPlainSyscall) {
  PatchedWrapper w(SYS_getpid);
  EXPECT_EQ(w.call(0, 0, 0), ::getpid());
  EXPECT_EQ(w.used(), 0u);
}

TEST(SyscallSites, ACallTheFastPathDoesNotTakeGoesThroughTheStubUnchanged) {
  PatchedWrapper w(SYS_getpgrp);
  w.patch();
  EXPECT_EQ(w.call(0, 0, 0), ::getpgrp());
  EXPECT_EQ(w.used(), 0u);
}

// pwrite64 through the stub: the fourth argument (r10) reaches the kernel.
TEST(SyscallSites, APatchedPwriteKeepsItsOffset) {
  char path[] = "/tmp/relive-sites-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  PatchedWrapper w(SYS_pwrite64);
  w.patch();
  EXPECT_EQ(w.call(fd, reinterpret_cast<uint64_t>("abc"), 3, 10), 3);
  char got[13] = {};
  EXPECT_EQ(::pread(fd, got, sizeof got, 0), 13);
  EXPECT_EQ(std::string(got + 10, 3), "abc");
  ::close(fd);
}

// A write (or writev) that fits only in part: the fast path writes what fits, the stub writes the
// rest through its own syscall (blocking) and returns the whole count, as write(2) would.
void expect_part_write_completed(int nr) {
  int fd[2];
  ASSERT_EQ(::pipe2(fd, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(fd[1], F_SETPIPE_SZ, 4096), 4096);
  std::string fill(4096 - 1000, 'f');
  ASSERT_EQ(::write(fd[1], fill.data(), fill.size()), static_cast<ssize_t>(fill.size()));
  std::string msg(8000, 'm');
  for (size_t i = 0; i < msg.size(); i += 7) msg[i] = static_cast<char>('a' + i % 26);
  iovec iov[3] = {{msg.data(), 700}, {msg.data() + 700, 2000}, {msg.data() + 2700, 5300}};
  PatchedWrapper w(nr);
  w.patch();
  pid_t reader = ::fork();
  if (reader == 0) {
    std::string all;
    char buf[4096];
    while (all.size() < fill.size() + msg.size()) {
      ssize_t n = ::read(fd[0], buf, sizeof buf);
      if (n <= 0) ::_exit(2);
      all.append(buf, static_cast<size_t>(n));
    }
    ::_exit(all == fill + msg ? 0 : 3);
  }
  int64_t wrote = nr == SYS_writev
                      ? w.call(fd[1], reinterpret_cast<uint64_t>(iov), 3)
                      : w.call(fd[1], reinterpret_cast<uint64_t>(msg.data()), msg.size());
  EXPECT_EQ(wrote, static_cast<int64_t>(msg.size()));
  // The fast path took the part that fitted (a pipe write over PIPE_BUF may be split), logged
  // as continued; or, when the reader had not emptied anything yet and the kernel took nothing,
  // the whole write went through the stub's own call.
  if (w.used() != 0) {
    uint64_t len_word;
    std::memcpy(
        &len_word,
        reinterpret_cast<const char*>(w.header()) + sizeof(relive_fp_header) + RELIVE_FP_CALL_BYTES,
        sizeof len_word);
    EXPECT_TRUE(len_word & RELIVE_FP_CONTINUED);
    EXPECT_GT(len_word & ~RELIVE_FP_CONTINUED, 0u);
    EXPECT_LT(len_word & ~RELIVE_FP_CONTINUED, msg.size());
  }
  int status = 0;
  ASSERT_EQ(::waitpid(reader, &status, 0), reader);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(fd[0]);
  ::close(fd[1]);
}

TEST(SyscallSites, APartWriteIsCompletedThroughTheStubsOwnCall) {
  expect_part_write_completed(SYS_write);
}

// writev's rest is a new iovec array in the stub's frame; the program's own is left alone.
TEST(SyscallSites, APartWritevIsCompletedThroughTheStubsOwnCall) {
  expect_part_write_completed(SYS_writev);
}

// The embedded blob itself (what recorders map into traced processes), mapped at its fixed
// address here: the same read through it.
TEST(SyscallSites, TheEmbeddedBlobRunsAtItsAddress) {
  std::string_view blob = fast_path_blob_bytes();
  ASSERT_GT(blob.size(), 0u);
  ASSERT_LE(blob.size(), kFastPathBlobSize);
  void* at =
      ::mmap(reinterpret_cast<void*>(kFastPathBlobAddr), kFastPathBlobSize, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ASSERT_EQ(at, reinterpret_cast<void*>(kFastPathBlobAddr)) << std::strerror(errno);
  std::memcpy(at, blob.data(), blob.size());
  ASSERT_EQ(::mprotect(at, kFastPathBlobSize, PROT_READ | PROT_EXEC), 0);
  int fd[2];
  ASSERT_EQ(::pipe2(fd, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fd[1], "from the blob", 13), 13);
  PatchedWrapper w(SYS_read);
  w.patch(kFastPathBlobAddr);
  char buf[64] = {};
  EXPECT_EQ(w.call(fd[0], reinterpret_cast<uint64_t>(buf), sizeof buf), 13);
  EXPECT_EQ(std::string(buf, 13), "from the blob");
  EXPECT_EQ(w.used(), slots(13) * RELIVE_FP_SLOT);
  ::close(fd[0]);
  ::close(fd[1]);
  ::munmap(at, kFastPathBlobSize);
}

namespace blocked {

// A thread that makes one call through a patched wrapper on a stack of our own, painted first.
struct Caller {
  PatchedWrapper* wrapper = nullptr;
  uint64_t args[3] = {};
  std::atomic<pid_t> tid{0};
  std::atomic<uint64_t> below{0};  // where the calling function's own frame ends
  int64_t result = 0;
};

void* run(void* arg) {
  auto* c = static_cast<Caller*>(arg);
  volatile char mark = 0;
  c->below = reinterpret_cast<uint64_t>(&mark);
  c->tid = static_cast<pid_t>(::syscall(SYS_gettid));
  c->result = c->wrapper->call(c->args[0], c->args[1], c->args[2]);
  return nullptr;
}

// The first number of /proc/self/task/<tid>/syscall: the call the thread is blocked in.
long blocked_in(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long nr = -2;
  in >> nr;
  return nr;
}

// Makes the call (which blocks) on a freshly painted stack with `room` in the buffer (a
// replayer's when `replay`); while the
// thread is blocked in the stub's own syscall, copies its stack below the calling function's
// frame; then `release` unblocks it.
std::string stack_while_blocked(PatchedWrapper& w, bool replay, uint64_t room, int nr,
                                std::array<uint64_t, 3> args,
                                const std::function<void()>& release) {
  std::vector<unsigned char> stack(256 << 10, 0xa5);
  w.header()->room = room;
  w.header()->mode = replay ? RELIVE_FP_REPLAY_MODE : 0;
  Caller c;
  c.wrapper = &w;
  std::copy(args.begin(), args.end(), c.args);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack.data(), stack.size());
  pthread_t t;
  EXPECT_EQ(::pthread_create(&t, &attr, run, &c), 0);
  pthread_attr_destroy(&attr);
  for (int i = 0; i < 20000 && (c.tid == 0 || blocked_in(c.tid) != nr); ++i) ::usleep(1000);
  EXPECT_EQ(blocked_in(c.tid), nr);
  size_t used = c.below - reinterpret_cast<uint64_t>(stack.data());
  std::string snapshot(reinterpret_cast<const char*>(stack.data()), used);
  release();
  ::pthread_join(t, nullptr);
  EXPECT_GE(c.result, 0);
  return snapshot;
}

}  // namespace blocked

// A call the recording's fast path sends down the traced path after trying it (a read that would
// wait, a writev whose iovecs it copied first) and the same call in its replay, which the fast
// path sends there at once (the logged call was traced), leave the same stack and frame while the
// thread is blocked in the stub's own call: another thread preempted meanwhile compares this
// thread's memory too (thread_state.h).
TEST(SyscallSites, ATracedCallLeavesTheSameStackWhetherTheFastPathTriedItOrNot) {
  int fd[2];
  ASSERT_EQ(::pipe2(fd, O_CLOEXEC), 0);
  ASSERT_EQ(::fcntl(fd[1], F_SETPIPE_SZ, 4096), 4096);
  char buf[64] = {};
  {
    PatchedWrapper w(SYS_read);
    w.patch();
    auto release = [&] { ASSERT_EQ(::write(fd[1], "x", 1), 1); };
    std::array<uint64_t, 3> args = {static_cast<uint64_t>(fd[0]), reinterpret_cast<uint64_t>(buf),
                                    sizeof buf};
    // Once first: the thread's first calls through lazily bound symbols leave the dynamic
    // linker's deep frames behind.
    blocked::stack_while_blocked(w, true, 0, SYS_read, args, release);
    std::string at_once = blocked::stack_while_blocked(w, true, 0, SYS_read, args, release);
    EXPECT_EQ(w.used(), 0u);
    std::string tried = blocked::stack_while_blocked(w, false, 2000, SYS_read, args, release);
    EXPECT_EQ(w.used(), 0u);  // it would have waited: nothing logged
    EXPECT_TRUE(at_once == tried) << "the fast path's work is left on the stack";
  }
  {
    std::string fill(4096, 'f');
    iovec iov[2] = {{buf, 10}, {buf + 10, 20}};
    PatchedWrapper w(SYS_writev);
    w.patch();
    auto full = [&] {
      ASSERT_EQ(::write(fd[1], fill.data(), fill.size()), static_cast<ssize_t>(fill.size()));
    };
    auto release = [&] {
      char drain[8192];
      ASSERT_GT(::read(fd[0], drain, sizeof drain), 0);
    };
    std::array<uint64_t, 3> args = {static_cast<uint64_t>(fd[1]), reinterpret_cast<uint64_t>(iov),
                                    2};
    full();
    std::string at_once = blocked::stack_while_blocked(w, true, 0, SYS_writev, args, release);
    char drain[8192];
    while (::fcntl(fd[0], F_SETFL, O_NONBLOCK) == 0 && ::read(fd[0], drain, sizeof drain) > 0) {
    }
    ASSERT_EQ(::fcntl(fd[0], F_SETFL, 0), 0);
    full();
    std::string tried = blocked::stack_while_blocked(w, false, 2000, SYS_writev, args, release);
    EXPECT_EQ(w.used(), 0u);
    EXPECT_TRUE(at_once == tried) << "the fast path's work is left on the stack or in the frame";
  }
  ::close(fd[0]);
  ::close(fd[1]);
}

}  // namespace relive::tracee
