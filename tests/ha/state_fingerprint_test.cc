#include "ha/state_fingerprint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "common/scoped_fd.h"

namespace relive::ha {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---- the subject: a child that changes one thing per command ----

struct Command {
  char op;
  int arg;
};

char g_file[64];  // a regular file the subject opens
int g_pipe[2] = {-1, -1};

void* park(void*) {
  for (;;) ::pause();
}

int connect_tcp(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? s : -1;
}

// A listening TCP socket on 127.0.0.1; its port goes to *port.
int listen_tcp(int* port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 8) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return s;
}

void* g_region = nullptr;

// Runs one command in the subject; the reply is its result (an fd, a port, 0 or -1).
int act(const Command& c) {
  switch (c.op) {
    case 'o':
      return ::open(g_file, O_RDWR);
    case 'd':
      return ::dup2(c.arg, 50);
    case 's':
      return static_cast<int>(::lseek(c.arg, 100, SEEK_SET));
    case 'm':
      return ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1
                                                                                                : 0;
    case 'M': {  // a mapping of its own for 'f'
      static void* const region =
          ::mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      g_region = region;
      return region == MAP_FAILED ? -1 : 0;
    }
    case 'f':  // the whole of that mapping MADV_DONTFORK: /proc/PID/maps stays the same
      return ::madvise(g_region, 4 * 4096, MADV_DONTFORK);
    case 't': {
      pthread_t t;
      return ::pthread_create(&t, nullptr, park, nullptr);
    }
    case 'b': {  // block SIGUSR2 in the main thread
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGUSR2);
      return ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    }
    case 'r':  // SIGUSR2 to the main thread, where it stays pending
      return static_cast<int>(::syscall(SYS_tgkill, ::getpid(), ::gettid(), SIGUSR2));
    case 'i':
      return ::signal(SIGUSR1, SIG_IGN) == SIG_ERR ? -1 : 0;
    case 'P':
      return ::pipe(g_pipe) == 0 ? g_pipe[0] : -1;
    case 'w':
      return static_cast<int>(::write(g_pipe[1], "abc", 3));
    case 'c':
      return connect_tcp(c.arg);
    case 'x':
      return static_cast<int>(::send(c.arg, "hello", 5, 0));
    case 'l': {
      int port = 0;
      return listen_tcp(&port) < 0 ? -1 : port;
    }
    default:
      return -1;
  }
}

[[noreturn]] void serve(int commands, int replies) {
  int ready = 0;
  if (::write(replies, &ready, sizeof ready) != sizeof ready) ::_exit(1);
  Command c;
  while (::read(commands, &c, sizeof c) == sizeof c) {
    int r = act(c);
    if (::write(replies, &r, sizeof r) != sizeof r) break;
  }
  ::_exit(0);
}

// Two threads that compute and sleep in turns, with a file, a pipe and a connected socket pair
// open: nothing in its fingerprint may move.
[[noreturn]] void spin(int ready) {
  static int ready_fd = ready;
  auto work = [](void* second) -> void* {
    // Started (glibc registered the thread's robust list before calling here).
    int zero = 0;
    if (second && ::write(ready_fd, &zero, sizeof zero) != sizeof zero) ::_exit(1);
    volatile uint64_t x = 0;
    for (;;) {
      for (int i = 0; i < 200000; ++i) x = x * 31 + static_cast<uint64_t>(i);
      timespec ts{0, 1000000};
      ::nanosleep(&ts, nullptr);
    }
  };
  ::open(g_file, O_RDONLY);
  int p[2], s[2];
  if (::pipe(p) != 0 || ::socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) ::_exit(1);
  pthread_t t;
  ::pthread_create(&t, nullptr, work, &ready_fd);
  work(nullptr);
  ::_exit(0);
}

// Closes every descriptor above 2 but `a` and `b`.
void keep_only_stdio_and(int a, int b) {
  if (a > b) std::swap(a, b);
  auto close_between = [](int first, int last) {
    if (first <= last)
      ::syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last), 0);
  };
  close_between(3, a - 1);
  close_between(a + 1, b - 1);
  close_between(b + 1, INT32_MAX);
}

class Subject {
 public:
  explicit Subject(bool spinning = false) {
    int c[2], r[2];
    if (::pipe2(c, O_CLOEXEC) != 0 || ::pipe2(r, O_CLOEXEC) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(c[1]);
      ::close(r[0]);
      // Not the test's stdio, which the test writes to meanwhile, nor any other descriptor it
      // inherited (ctest's own log file is one: its offset moves as ctest writes).
      int null = ::open("/dev/null", O_RDWR);
      for (int fd : {0, 1, 2}) ::dup2(null, fd);
      ::close(null);
      keep_only_stdio_and(c[0], r[1]);
      if (spinning) spin(r[1]);
      serve(c[0], r[1]);
    }
    ::close(c[0]);
    ::close(r[1]);
    commands_.reset(c[1]);
    replies_.reset(r[0]);
    // Ready once it closed the other ends of its pipes (a spinner: once its threads run).
    if (read_reply() != 0) std::abort();
  }
  ~Subject() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

  // Runs a command and returns its result once the subject has done it; -2 on a timeout.
  int ask(char op, int arg = 0) {
    Command c{op, arg};
    if (::write(commands_.get(), &c, sizeof c) != sizeof c) return -2;
    return read_reply();
  }

 private:
  int read_reply() {
    pollfd p{replies_.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return -2;
    int r = -2;
    if (::read(replies_.get(), &r, sizeof r) != sizeof r) return -2;
    return r;
  }

  pid_t pid_ = -1;
  ScopedFd commands_, replies_;
};

ProcessFingerprint take(pid_t pid) {
  Result<ProcessFingerprint> fp = fingerprint_process(pid);
  EXPECT_TRUE(fp.ok()) << fp.status().to_string();
  return fp.ok() ? std::move(fp).value() : ProcessFingerprint{};
}

// The first difference from `base` that shows within 5 s (for changes the kernel makes after
// the subject's command returns, such as TCP acknowledgements).
std::optional<std::string> wait_for_difference(const ProcessFingerprint& base) {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    std::optional<std::string> d = first_difference(base, take(base.pid));
    if (d || Clock::now() > deadline) return d;
    std::this_thread::sleep_for(milliseconds(1));
  }
}

// Creates the regular file the subject opens (before the subject forks).
bool make_file() {
  std::snprintf(g_file, sizeof g_file, "/tmp/relive-fp-test-%d", ::getpid());
  ScopedFd f(::open(g_file, O_RDWR | O_CREAT | O_TRUNC, 0600));
  return f.valid() && ::write(f.get(), std::string(4096, 'x').data(), 4096) == 4096;
}

class StateFingerprintTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(file_made_); }
  void TearDown() override { ::unlink(g_file); }

  // Runs `op` in the subject and expects a difference from the fingerprint before it that
  // contains `expected`; returns the command's result.
  int expect_change(char op, int arg, const std::string& expected) {
    ProcessFingerprint base = take(subject_.pid());
    EXPECT_EQ(first_difference(base, take(subject_.pid())), std::nullopt) << "not yet changed";
    int r = subject_.ask(op, arg);
    EXPECT_GE(r, 0) << "command " << op;
    std::optional<std::string> d = wait_for_difference(base);
    EXPECT_TRUE(d.has_value()) << "command " << op << " went unnoticed";
    if (d) {
      EXPECT_NE(d->find(expected), std::string::npos) << *d;
    }
    return r;
  }

  bool file_made_ = make_file();
  Subject subject_;
};

TEST_F(StateFingerprintTest, OpeningAFileChangesTheFdSet) {
  expect_change('o', 0, "fd set changed");
}

TEST_F(StateFingerprintTest, Dup2ChangesTheFdSet) {
  int fd = subject_.ask('o');
  ASSERT_GE(fd, 0);
  expect_change('d', fd, "fd set changed");
}

TEST_F(StateFingerprintTest, SeekingARegularFileChangesOnlyItsOffset) {
  int fd = subject_.ask('o');
  ASSERT_GE(fd, 0);
  ProcessFingerprint base = take(subject_.pid());
  expect_change('s', fd, "fd " + std::to_string(fd) + " offset changed");
  std::optional<std::vector<int>> offsets = offset_only_changes(base, take(subject_.pid()));
  ASSERT_TRUE(offsets.has_value());
  EXPECT_EQ(*offsets, std::vector<int>{fd});

  // Anything else besides: not only offsets.
  ASSERT_EQ(subject_.ask('i'), 0);
  EXPECT_EQ(offset_only_changes(base, take(subject_.pid())), std::nullopt);
}

TEST_F(StateFingerprintTest, MappingMemoryChangesTheMap) { expect_change('m', 0, "memory map"); }

// madvise of a whole mapping shows only in the mappings' flags: read with the fingerprint by
// default, or alone (read_vma_flags) when the fingerprint leaves them out.
TEST_F(StateFingerprintTest, MadviseOfAWholeMappingChangesOnlyItsFlags) {
  ASSERT_EQ(subject_.ask('M'), 0);
  Result<ProcessFingerprint> without = fingerprint_process(subject_.pid(), {.vma_flags = false});
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(without->items.contains("vmflags"));
  Result<std::string> flags = read_vma_flags(subject_.pid());
  ASSERT_TRUE(flags.ok()) << flags.status().to_string();
  expect_change('f', 0, "memory mapping flags");
  Result<ProcessFingerprint> after = fingerprint_process(subject_.pid(), {.vma_flags = false});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(first_difference(*without, *after), std::nullopt);
  Result<std::string> flags_after = read_vma_flags(subject_.pid());
  ASSERT_TRUE(flags_after.ok());
  EXPECT_NE(*flags, *flags_after);
  EXPECT_NE(flags_after->find(" dc"), std::string::npos) << *flags_after;
  EXPECT_FALSE(read_vma_flags(0x3fffffff).ok());
}

TEST_F(StateFingerprintTest, StartingAThreadChangesTheThreadSet) {
  expect_change('t', 0, "thread set changed");
}

TEST_F(StateFingerprintTest, IgnoringASignalChangesSigIgn) { expect_change('i', 0, "(SigIgn)"); }

TEST_F(StateFingerprintTest, SignalMaskIsNotCompared) {
  std::string status = "/proc/" + std::to_string(subject_.pid()) + "/status";
  auto sigblk = [&] {
    std::FILE* f = std::fopen(status.c_str(), "r");
    char line[256];
    std::string out;
    while (f && std::fgets(line, sizeof line, f)) {
      if (std::string(line).starts_with("SigBlk:")) out = line;
    }
    if (f) std::fclose(f);
    return out;
  };
  ProcessFingerprint base = take(subject_.pid());
  std::string before = sigblk();
  ASSERT_EQ(subject_.ask('b'), 0);
  ASSERT_NE(sigblk(), before) << "the mask did change";
  EXPECT_EQ(first_difference(base, take(subject_.pid())), std::nullopt);
}

TEST_F(StateFingerprintTest, PendingSignalIsCompared) {
  ASSERT_EQ(subject_.ask('b'), 0);
  expect_change('r', 0, "status changed (Sig");
}

TEST_F(StateFingerprintTest, DataInAPipeChangesItsQueue) {
  int fd = subject_.ask('P');
  ASSERT_GE(fd, 0);
  expect_change('w', 0, "fd " + std::to_string(fd) + " queued data changed");
}

TEST_F(StateFingerprintTest, TcpTrafficBothWaysChangesTheSocket) {
  int port = 0;
  ScopedFd listener(listen_tcp(&port));
  ASSERT_TRUE(listener.valid());
  int fd = subject_.ask('c', port);
  ASSERT_GE(fd, 0);
  ScopedFd peer(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(peer.valid());
  const std::string queue = "fd " + std::to_string(fd) + " queued data changed";

  // Idle: stable.
  ProcessFingerprint idle = take(subject_.pid());
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(milliseconds(2));
    ASSERT_EQ(first_difference(idle, take(subject_.pid())), std::nullopt);
  }

  // The subject sends.
  expect_change('x', fd, queue);
  char buf[16];
  ASSERT_EQ(::recv(peer.get(), buf, sizeof buf, 0), 5);

  // Bytes arrive without the subject doing anything.
  ProcessFingerprint before = take(subject_.pid());
  ASSERT_EQ(::send(peer.get(), "xyz", 3, 0), 3);
  std::optional<std::string> d = wait_for_difference(before);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, queue);
}

TEST_F(StateFingerprintTest, ConnectionWaitingToBeAcceptedChangesTheListener) {
  int port = subject_.ask('l');
  ASSERT_GT(port, 0);
  ProcessFingerprint base = take(subject_.pid());
  ScopedFd client(connect_tcp(port));
  ASSERT_TRUE(client.valid());
  std::optional<std::string> d = wait_for_difference(base);
  ASSERT_TRUE(d.has_value());
  EXPECT_NE(d->find("queued data changed"), std::string::npos) << *d;
}

TEST(StateFingerprint, StaysEqualWhileAProcessComputesAndSleeps) {
  std::snprintf(g_file, sizeof g_file, "/proc/self/cmdline");
  Subject spinner(/*spinning=*/true);
  ProcessFingerprint base = take(spinner.pid());
  ASSERT_NE(base.items["threads"].find(' '), base.items["threads"].rfind(' ')) << "2 threads";
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
    ProcessFingerprint now = take(spinner.pid());
    ASSERT_EQ(first_difference(base, now), std::nullopt) << "sample " << i;
  }
}

// How long a fingerprint of a small idle process takes (a log line, not a check); the median
// and the fastest of 200 rounds, as other work on the machine may preempt some.
TEST_F(StateFingerprintTest, MeasuresHowLongAFingerprintTakes) {
  int port = 0;
  ScopedFd listener(listen_tcp(&port));
  ASSERT_GE(subject_.ask('o'), 0);
  ASSERT_GE(subject_.ask('P'), 0);
  ASSERT_GE(subject_.ask('c', port), 0);
  ASSERT_EQ(subject_.ask('t'), 0);
  size_t items = take(subject_.pid()).items.size();
  for (bool vma_flags : {true, false}) {
    std::vector<double> us;
    for (int i = 0; i < 200; ++i) {
      auto start = Clock::now();
      ASSERT_TRUE(fingerprint_process(subject_.pid(), {vma_flags}).ok());
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    std::sort(us.begin(), us.end());
    std::printf(
        "[   PERF   ] fingerprint_process, 2 threads, 3 fds besides stdio and pipes, %zu "
        "items, vma_flags=%d: median %.0f us, fastest %.0f us\n",
        items, vma_flags, us[us.size() / 2], us[0]);
  }
}

TEST(StateFingerprint, GoneProcessIsNotFound) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  Result<ProcessFingerprint> fp = fingerprint_process(pid);
  ASSERT_FALSE(fp.ok());
  EXPECT_EQ(fp.status().code(), Status::Code::kNotFound) << fp.status().to_string();
}

// ---- comparison alone ----

ProcessFingerprint fingerprint(std::map<std::string, std::string> items) {
  return ProcessFingerprint{.pid = 7, .items = std::move(items)};
}

TEST(FirstDifference, NamesTheItemAndTheLine) {
  ProcessFingerprint a = fingerprint({{"fd/3", "-> /x\npos: 1"},
                                      {"fdpos/4", "pos: 5"},
                                      {"thread/7/status", "Name:\tx\nSigIgn:\t0\n"}});
  EXPECT_EQ(first_difference(a, a), std::nullopt);
  ProcessFingerprint b = a;
  b.items["fdpos/4"] = "pos: 6";
  EXPECT_EQ(first_difference(a, b), "fd 4 offset changed");
  b = a;
  b.items["thread/7/status"] = "Name:\tx\nSigIgn:\t1\n";
  EXPECT_EQ(first_difference(a, b), "thread 7 status changed (SigIgn)");
  b = a;
  b.items.erase("fd/3");
  EXPECT_EQ(first_difference(a, b), "fd 3 disappeared");
  EXPECT_EQ(first_difference(b, a), "fd 3 appeared");
  b = a;
  b.pid = 8;
  EXPECT_EQ(first_difference(a, b), "process id changed");
}

TEST(FirstDifference, SetsAndTheMapComeFirst) {
  ProcessFingerprint a = fingerprint({{"auxv", "1"}, {"maps", "a"}, {"threads", "1 "}});
  ProcessFingerprint b = fingerprint({{"auxv", "2"}, {"maps", "b"}, {"threads", "1 "}});
  EXPECT_EQ(first_difference(a, b), "memory map changed");
  b.items["threads"] = "1 2 ";
  EXPECT_EQ(first_difference(a, b), "thread set changed");
}

TEST(OffsetOnlyChanges, OnlyRegularFileOffsets) {
  ProcessFingerprint a =
      fingerprint({{"fd/3", "x"}, {"fdpos/3", "pos: 1"}, {"fdpos/12", "pos: 1"}});
  EXPECT_EQ(offset_only_changes(a, a), std::vector<int>{});
  ProcessFingerprint b = a;
  b.items["fdpos/3"] = "pos: 2";
  b.items["fdpos/12"] = "pos: 2";
  EXPECT_EQ(offset_only_changes(a, b), (std::vector<int>{3, 12}));
  b.items["fd/3"] = "y";
  EXPECT_EQ(offset_only_changes(a, b), std::nullopt);
  b = a;
  b.items.erase("fdpos/12");
  EXPECT_EQ(offset_only_changes(a, b), std::nullopt);
}

}  // namespace
}  // namespace relive::ha
